"""Forward-only schema migrations. Append a new (version, statements) entry; never edit one
that has shipped, because workspaces in the wild already ran it."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE SEQUENCE dataset_id_seq START 1",
            """CREATE TABLE datasets (
                dataset_id INTEGER PRIMARY KEY DEFAULT nextval('dataset_id_seq'),
                name VARCHAR NOT NULL UNIQUE,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            "CREATE SEQUENCE version_id_seq START 1",
            """CREATE TABLE dataset_versions (
                version_id INTEGER PRIMARY KEY DEFAULT nextval('version_id_seq'),
                dataset_id INTEGER NOT NULL,
                version INTEGER NOT NULL,
                sha256 VARCHAR NOT NULL,
                source_path VARCHAR NOT NULL,
                source_format VARCHAR NOT NULL,
                rows_total INTEGER NOT NULL,
                rows_valid INTEGER NOT NULL,
                errors INTEGER NOT NULL,
                warnings INTEGER NOT NULL,
                token_counting VARCHAR NOT NULL,
                max_seq_len INTEGER NOT NULL,
                summary JSON,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                UNIQUE (dataset_id, version)
            )""",
            # No index on examples: rows arrive in line order per version, so DuckDB's
            # zone maps already prune (version_id, line) lookups; an ART index on 1M rows
            # would cost memory and insert time for no gain.
            """CREATE TABLE examples (
                version_id INTEGER NOT NULL,
                line INTEGER NOT NULL,
                valid BOOLEAN NOT NULL,
                raw VARCHAR,
                messages JSON,
                metadata JSON,
                tools JSON,
                system_text VARCHAR,
                user_text VARCHAR,
                assistant_text VARCHAR,
                label VARCHAR,
                slice VARCHAR,
                n_turns INTEGER,
                total_tokens INTEGER,
                assistant_tokens INTEGER,
                content_hash VARCHAR
            )""",
            "CREATE SEQUENCE finding_id_seq START 1",
            """CREATE TABLE findings (
                finding_id BIGINT PRIMARY KEY DEFAULT nextval('finding_id_seq'),
                version_id INTEGER NOT NULL,
                split_id INTEGER,
                check_id VARCHAR NOT NULL,
                severity VARCHAR NOT NULL,
                first_line INTEGER NOT NULL,
                lines INTEGER[] NOT NULL,
                message VARCHAR NOT NULL,
                other_path VARCHAR,
                other_lines INTEGER[],
                spans JSON
            )""",
            "CREATE SEQUENCE split_id_seq START 1",
            """CREATE TABLE splits (
                split_id INTEGER PRIMARY KEY DEFAULT nextval('split_id_seq'),
                version_id INTEGER NOT NULL,
                seed INTEGER NOT NULL,
                val_fraction DOUBLE NOT NULL,
                test_fraction DOUBLE NOT NULL,
                group_by VARCHAR,
                stratify VARCHAR,
                manifest JSON NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE split_assignments (
                split_id INTEGER NOT NULL,
                line INTEGER NOT NULL,
                split VARCHAR NOT NULL
            )""",
        ],
    ),
    (
        2,
        [
            # Runs are indexed from their run directories (the source of truth) by ingest;
            # times are unix seconds as the trainer writes them.
            """CREATE TABLE runs (
                run_id VARCHAR PRIMARY KEY,
                name VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                run_dir VARCHAR NOT NULL,
                created_at DOUBLE,
                state VARCHAR NOT NULL,
                reason VARCHAR,
                message VARCHAR,
                pid INTEGER,
                step INTEGER,
                total_steps INTEGER,
                started_at DOUBLE,
                ended_at DOUBLE,
                heartbeat DOUBLE,
                dataset VARCHAR,
                base_model VARCHAR,
                config JSON,
                lineage JSON,
                loss DOUBLE,
                val_loss DOUBLE,
                best_val_loss DOUBLE,
                best_val_step INTEGER,
                tokens_per_s DOUBLE,
                ingested_at DOUBLE
            )""",
            """CREATE TABLE run_metrics (
                run_id VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                step INTEGER NOT NULL,
                time DOUBLE,
                epoch DOUBLE,
                loss DOUBLE,
                lr DOUBLE,
                grad_norm DOUBLE,
                tokens BIGINT,
                tokens_per_s DOUBLE,
                mem_allocated BIGINT,
                mem_reserved BIGINT,
                mem_peak BIGINT,
                val_loss DOUBLE,
                val_token_accuracy DOUBLE,
                extra JSON,
                PRIMARY KEY (run_id, kind, step)
            )""",
            """CREATE TABLE run_cursors (
                run_id VARCHAR NOT NULL,
                file VARCHAR NOT NULL,
                byte_offset BIGINT NOT NULL,
                PRIMARY KEY (run_id, file)
            )""",
        ],
    ),
    (
        3,
        [
            # An eval is a set of model outputs on a dataset version (or one split of it),
            # keyed by the example's source line; references stay in `examples`, which are
            # immutable per version, so they are never copied here.
            "CREATE SEQUENCE eval_id_seq START 1",
            """CREATE TABLE evals (
                eval_id INTEGER PRIMARY KEY DEFAULT nextval('eval_id_seq'),
                label VARCHAR NOT NULL UNIQUE,
                version_id INTEGER NOT NULL,
                split VARCHAR,
                split_id INTEGER,
                source VARCHAR NOT NULL,
                model VARCHAR,
                adapter VARCHAR,
                prompt VARCHAR,
                scorers JSON NOT NULL,
                outputs_path VARCHAR,
                outputs_sha256 VARCHAR,
                rows INTEGER NOT NULL,
                notes JSON,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            """CREATE TABLE eval_outputs (
                eval_id INTEGER NOT NULL,
                line INTEGER NOT NULL,
                output VARCHAR NOT NULL,
                input_tokens INTEGER,
                output_tokens INTEGER,
                latency_s DOUBLE,
                finish_reason VARCHAR,
                PRIMARY KEY (eval_id, line)
            )""",
            # score NULL = the scorer does not apply to that example (e.g. no reference),
            # which is different from a failure and must not count as one.
            """CREATE TABLE eval_scores (
                eval_id INTEGER NOT NULL,
                line INTEGER NOT NULL,
                scorer VARCHAR NOT NULL,
                score DOUBLE,
                PRIMARY KEY (eval_id, line, scorer)
            )""",
            "CREATE SEQUENCE gate_id_seq START 1",
            """CREATE TABLE gate_results (
                gate_id INTEGER PRIMARY KEY DEFAULT nextval('gate_id_seq'),
                baseline_eval_id INTEGER NOT NULL,
                candidate_eval_id INTEGER NOT NULL,
                spec_hash VARCHAR NOT NULL,
                spec JSON NOT NULL,
                passed BOOLEAN NOT NULL,
                verdict JSON NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
        ],
    ),
    (
        4,
        [
            # One verdict per reviewer per example of a baseline/candidate pair; judging the
            # same example again replaces the reviewer's earlier verdict.
            """CREATE TABLE reviews (
                baseline_eval_id INTEGER NOT NULL,
                candidate_eval_id INTEGER NOT NULL,
                line INTEGER NOT NULL,
                reviewer VARCHAR NOT NULL,
                verdict VARCHAR NOT NULL,
                note VARCHAR NOT NULL DEFAULT '',
                corrected VARCHAR,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                PRIMARY KEY (baseline_eval_id, candidate_eval_id, line, reviewer)
            )""",
        ],
    ),
    (
        5,
        [
            # A prompt is versioned like a dataset: a new version only when its content
            # (sha256 over the canonical JSON of every field below) changes.
            """CREATE TABLE prompts (
                name VARCHAR NOT NULL,
                version INTEGER NOT NULL,
                system VARCHAR,
                few_shot JSON NOT NULL,
                max_new_tokens INTEGER NOT NULL,
                temperature DOUBLE NOT NULL,
                stop JSON NOT NULL,
                sha256 VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                PRIMARY KEY (name, version)
            )""",
        ],
    ),
    (
        6,
        [
            # An LLM judge's pairwise verdicts on a baseline/candidate pair. They live apart
            # from human `reviews` so a judge score can never pass for a person's verdict.
            "CREATE SEQUENCE judge_id_seq START 1",
            """CREATE TABLE judge_runs (
                judge_id INTEGER PRIMARY KEY DEFAULT nextval('judge_id_seq'),
                baseline_eval_id INTEGER NOT NULL,
                candidate_eval_id INTEGER NOT NULL,
                judge_model VARCHAR NOT NULL,
                template_sha256 VARCHAR NOT NULL,
                settings JSON NOT NULL,
                examples INTEGER NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )""",
            # One row per example: the verdict after both orders, and what each order said.
            """CREATE TABLE judge_verdicts (
                judge_id INTEGER NOT NULL,
                line INTEGER NOT NULL,
                verdict VARCHAR NOT NULL,
                baseline_first VARCHAR NOT NULL,
                candidate_first VARCHAR NOT NULL,
                p_candidate DOUBLE NOT NULL,
                p_baseline DOUBLE NOT NULL,
                p_tie DOUBLE NOT NULL,
                PRIMARY KEY (judge_id, line)
            )""",
        ],
    ),
    (
        7,
        [
            # Tools log steps past 2^31 (a step counter that never resets, a sample count
            # logged as the step) and token counts past 2^63 (cumulative over a long
            # pretraining); INTEGER steps and BIGINT tokens made one such log fail every
            # ingest. Steps become BIGINT, token counts HUGEINT.
            "ALTER TABLE runs ALTER COLUMN pid TYPE BIGINT",
            "ALTER TABLE runs ALTER COLUMN step TYPE BIGINT",
            "ALTER TABLE runs ALTER COLUMN total_steps TYPE BIGINT",
            "ALTER TABLE runs ALTER COLUMN best_val_step TYPE BIGINT",
            # DuckDB cannot change the type of a primary-key column in place: copy the table.
            """CREATE TABLE run_metrics_v7 (
                run_id VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                step BIGINT NOT NULL,
                time DOUBLE,
                epoch DOUBLE,
                loss DOUBLE,
                lr DOUBLE,
                grad_norm DOUBLE,
                tokens HUGEINT,
                tokens_per_s DOUBLE,
                mem_allocated BIGINT,
                mem_reserved BIGINT,
                mem_peak BIGINT,
                val_loss DOUBLE,
                val_token_accuracy DOUBLE,
                extra JSON,
                PRIMARY KEY (run_id, kind, step)
            )""",
            """INSERT INTO run_metrics_v7 SELECT run_id, kind, step, time, epoch, loss, lr,
                grad_norm, tokens, tokens_per_s, mem_allocated, mem_reserved, mem_peak,
                val_loss, val_token_accuracy, extra FROM run_metrics""",
            "DROP TABLE run_metrics",
            "ALTER TABLE run_metrics_v7 RENAME TO run_metrics",
        ],
    ),
    (
        8,
        [
            # One row per decision-record version. The payload is the whole `ftod decide
            # --json` object as decided; the link columns repeat what it points at so the
            # record can be found from a dataset, an eval or a gate spec without parsing JSON.
            """CREATE TABLE decisions (
                name VARCHAR NOT NULL,
                version INTEGER NOT NULL,
                verdict VARCHAR NOT NULL,
                symptoms JSON NOT NULL,
                answers JSON NOT NULL,
                inputs JSON NOT NULL,
                payload JSON NOT NULL,
                reviewer VARCHAR NOT NULL,
                dataset_version_id INTEGER,
                baseline_eval_id INTEGER,
                gate_spec_hash VARCHAR,
                candidate_eval_id INTEGER,
                run_id VARCHAR,
                created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
                PRIMARY KEY (name, version)
            )""",
        ],
    ),
]
