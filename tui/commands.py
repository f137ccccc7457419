"""The command palette (ctrl+p): commands that depend on where the user is.

"Open dataset NAME" for each dataset the datasets screen has loaded, "Show findings:
CHECK" for each check of the version open on the stack, "Add dataset file…", "Home",
"Decide", "Evals" and "Help".
Nothing here reads the store: it offers what the screens already loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.screens.datasets import DatasetsScreen
from tui.screens.findings import FindingsScreen
from tui.screens.version import VersionScreen


@dataclass(frozen=True, slots=True)
class PaletteCommand:
    title: str
    help: str
    run: Callable[[], object]


class FtodCommands(Provider):
    """Context-aware ftod commands."""

    def _datasets_screen(self) -> DatasetsScreen | None:
        return next((s for s in self.app.screen_stack if isinstance(s, DatasetsScreen)), None)

    def _version_screen(self) -> VersionScreen | None:
        """The version the user is looking at: the nearest VersionScreen down the stack."""
        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, VersionScreen):
                return screen
        return None

    def commands(self) -> list[PaletteCommand]:
        app = self.app
        found: list[PaletteCommand] = []
        version_screen = self._version_screen()
        if version_screen is not None and version_screen.detail is not None:
            version = version_screen.detail.version
            for check in version_screen.checks:
                found.append(
                    PaletteCommand(
                        f"Show findings: {check}",
                        f"The {check} findings of {version.ref}",
                        partial(_push_findings, app.push_screen, version.version_id, check),
                    )
                )
            found.append(
                PaletteCommand(
                    "Show all findings",
                    f"Every finding of {version.ref}",
                    partial(_push_findings, app.push_screen, version.version_id, None),
                )
            )
        datasets_screen = self._datasets_screen()
        if datasets_screen is not None:
            for listing in datasets_screen.datasets:
                found.append(
                    PaletteCommand(
                        f"Open dataset {listing.name}",
                        f"{listing.name}@{listing.latest_version}: {listing.rows:,} rows, "
                        f"{listing.errors:,} errors, {listing.warnings:,} warnings",
                        partial(_push_version, app.push_screen, listing.name),
                    )
                )
            found.append(
                PaletteCommand(
                    "Add dataset file…",
                    "Check a JSONL or Parquet file and store it as a dataset version",
                    datasets_screen.action_add,
                )
            )
        found.append(
            PaletteCommand(
                "Home",
                "The loop decide → ship: each stage's status from the store and its next action",
                partial(app.run_action, "home"),
            )
        )
        found.append(
            PaletteCommand(
                "Decide",
                "Fine-tune, or don't: the verdict from your symptoms and the workspace's evidence",
                partial(app.run_action, "decide"),
            )
        )
        found.append(
            PaletteCommand(
                "Evals",
                "Every eval of the workspace; enter opens the review room on a pair",
                partial(app.run_action, "evals"),
            )
        )
        found.append(
            PaletteCommand("Help", "The keys of this screen", partial(app.run_action, "help"))
        )
        return found

    async def discover(self) -> Hits:
        for command in self.commands():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)


def _push_findings(push: Callable[..., object], version_id: int, check: str | None) -> None:
    push(FindingsScreen(version_id, check))


def _push_version(push: Callable[..., object], name: str) -> None:
    push(VersionScreen(ref=name))
