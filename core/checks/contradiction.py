"""contradiction: the same question (exactly or nearly) answered or labelled differently."""

from __future__ import annotations

import re
from collections import defaultdict

from core.checks import minhash
from core.checks.base import DatasetCheck, DatasetContext
from core.checks.boilerplate import stripped
from core.findings import Finding

# Outputs sharing less than this much of their text are "materially different".
CONTRADICTION_MAX_OUTPUT_SIMILARITY = 0.5
# Inputs at least this similar count as "the same question" for contradictions, provided
# they also mention the same numbers and identifiers: "order #4821" and "order #9913" are
# different questions however alike the rest of the text is.
CONTRADICTION_MIN_INPUT_SIMILARITY = 0.75
# LSH misses about a third of the pairs that sit right at its threshold, so questions are
# searched at a lower one and then filtered on their exact similarity.
_INPUT_SEARCH_THRESHOLD = 0.75
# Each row of a same-question group is compared with at most this many distinct answers.
_MAX_REPRESENTATIVES = 50
_IDENTIFIER = re.compile(r"\S*\d\S*")


def identifiers(text: str) -> list[str]:
    """Tokens that contain a digit (order numbers, amounts, versions), sorted."""
    return sorted(token.strip(".,;:!?()[]{}\"'") for token in _IDENTIFIER.findall(text))


def _same_question_pairs(dataset: DatasetContext) -> list[tuple[int, int]]:
    """Rows asking the same question: exactly (normalised) or nearly (MinHash)."""
    parsed, exact_group_of = dataset.parsed, dataset.exact_group_of
    by_input: dict[bytes, list[int]] = defaultdict(list)
    for index, input_key in enumerate(parsed.input_keys):
        if input_key:
            by_input[input_key].append(index)
    pairs: list[tuple[int, int]] = []
    for members in by_input.values():
        if len(members) > 1:
            # Compare each row with the group's distinct answers only (groups can be large).
            # Identical rows differ only in their label, if at all: one row per
            # (exact group, label) stands for the rest.
            representatives: list[int] = []
            seen: set[tuple[int, str | None]] = set()
            for member in members:
                identity = (exact_group_of[member], parsed.labels[member])
                if identity in seen:
                    continue
                seen.add(identity)
                pairs.extend((r, member) for r in representatives[:_MAX_REPRESENTATIVES])
                representatives.append(member)
    del by_input
    # MinHash normalises case, punctuation and spacing itself, vectorised.
    questions = stripped([parsed.user_text(i) for i in range(dataset.count)])
    near_inputs = minhash.near_duplicate_pairs(
        questions,
        _INPUT_SEARCH_THRESHOLD,
        progress=dataset.stage_progress("similar questions"),
    )
    pairs.extend(
        (i, j)
        for i, j, similarity in near_inputs
        if similarity >= CONTRADICTION_MIN_INPUT_SIMILARITY
        and identifiers(questions[i]) == identifiers(questions[j])
    )
    return pairs


def find(dataset: DatasetContext) -> list[Finding]:
    parsed, exact_group_of = dataset.parsed, dataset.exact_group_of
    contradiction_pairs: set[tuple[int, int]] = set()
    to_compare: list[tuple[int, int]] = []
    for first, second in _same_question_pairs(dataset):
        label_a, label_b = parsed.labels[first], parsed.labels[second]
        labels_differ = label_a is not None and label_b is not None and label_a != label_b
        if labels_differ:
            contradiction_pairs.add((min(first, second), max(first, second)))
        elif exact_group_of[first] != exact_group_of[second]:
            to_compare.append((first, second))
    if to_compare:
        # Answers are compared in one vectorised pass over just the rows involved.
        involved = sorted({index for pair in to_compare for index in pair})
        position = {index: offset for offset, index in enumerate(involved)}
        answers = [parsed.assistant_text(index) for index in involved]
        similarities = minhash.jaccard_pairs(
            answers, [(position[a], position[b]) for a, b in to_compare]
        )
        for (first, second), similarity in zip(to_compare, similarities.tolist(), strict=True):
            if similarity < CONTRADICTION_MAX_OUTPUT_SIMILARITY:
                contradiction_pairs.add((min(first, second), max(first, second)))
    findings: list[Finding] = []
    for group in minhash.group_pairs(dataset.count, contradiction_pairs):
        lines = tuple(parsed.lines[m] for m in group)
        labels = sorted({label for m in group if (label := parsed.labels[m]) is not None})
        label_note = f"; labels {', '.join(labels)}" if len(labels) > 1 else ""
        findings.append(
            Finding(
                "contradiction",
                "error",
                lines,
                f"{len(group)} rows ask the same question but answer it differently{label_note}",
            )
        )
    return findings


CHECK = DatasetCheck(
    "contradiction",
    ("error",),
    "the same (or nearly the same) question with a materially different answer or label",
    find,
)
