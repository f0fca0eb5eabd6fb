"""The documentation stays true to the repository: short README, links that resolve, no paths
outside the repository, the CI command, the model card's figures and every command-line option."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 260
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
OUTSIDE_THE_REPOSITORY = ("../shared", "/work/")
DATA_PLACEHOLDER = "<data>"  # what the pages write for the local folder of public MRI


def text_of(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    prose = FENCE.sub("", text_of(page))  # a "# comment" in a code block is no heading
    return {heading_anchor(line.lstrip("#")) for line in prose.splitlines() if line.startswith("#")}


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(text_of(page)) if not re.match(r"[a-z]+:", target)]


def test_readme_is_short_enough_to_read():
    lines = text_of(README).count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_readme_links_the_design_results_model_card_and_cli_pages():
    links = set(relative_links(README))
    for name in ("design.md", "results.md", "model-card.md", "cli.md"):
        assert (DOCS / name).is_file(), name
        assert f"docs/{name}" in {link.split("#")[0] for link in links}, f"README.md does not link docs/{name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves_to_a_file_and_heading_of_the_repository(page):
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_relative_to(ROOT) and target.exists(), f"{page.name}: {link} leads nowhere"
        if anchor:
            assert target.suffix == ".md" and anchor in anchors_of(target), f"{page.name}: no heading for {link}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_names_a_path_outside_the_repository(page):
    text = text_of(page)
    assert [path for path in OUTSIDE_THE_REPOSITORY if path in text] == []


def quick_start_commands() -> list[str]:
    section = text_of(README).split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in FENCE.findall(section)]


def test_the_quick_start_is_two_commands_and_the_second_is_what_ci_runs():
    ci_command = next(line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                      if line.startswith("python3.11 -m venv"))
    demo, tests = quick_start_commands()
    assert tests == ci_command
    assert demo.startswith("python3.11 -m venv .venv && .venv/bin/pip install torch==") and demo.endswith(
        ".venv/bin/rrlsrn demo")


def test_extras_are_installed_into_the_quick_start_environment():
    installs = [line for line in text_of(README).splitlines() if "pip install" in line and "[" in line]
    assert installs and all(".venv/bin/pip install" in line for line in installs), installs


def card_figures(card: dict) -> dict[str, str]:
    """The figures the model card page must quote exactly: SHA256, parameters, selected step, commands."""
    training = card["training"]
    parameters = card.get("architecture", card).get("parameters")
    commands = training["command"] if isinstance(training["command"], list) else [training["command"]]
    figures = {"sha256": card["sha256"], "parameters": str(parameters),
               "selected step": f"step {training['selected_step']}"}
    figures.update({f"command {n}": command for n, command in enumerate(commands)})
    return figures


@pytest.mark.parametrize("card_path", sorted((ROOT / "Resources" / "Models").glob("*.json")), ids=lambda p: p.stem)
def test_the_model_card_page_quotes_each_json_card_exactly(card_path):
    page = text_of(DOCS / "model-card.md")
    card = json.loads(card_path.read_text())
    assert card_path.name in page
    missing = {name: figure for name, figure in card_figures(card).items() if figure not in page}
    assert missing == {}, f"docs/model-card.md differs from {card_path.name}"


def test_the_cards_commands_name_the_data_by_the_placeholder_the_pages_use():
    for card_path in (ROOT / "Resources" / "Models").glob("*.json"):
        commands = [figure for name, figure in card_figures(json.loads(card_path.read_text())).items()
                    if name.startswith("command")]
        data_roots = [command.split("--data-root ")[1].split()[0] for command in commands if "--data-root" in command]
        assert set(data_roots) <= {DATA_PLACEHOLDER}, card_path.name


def command_options() -> dict[str, list[str]]:
    """Every long option of every ``rrlsrn`` subcommand, as its parser declares it."""
    from RRLSRNSuperResLib.cli.main import COMMANDS, build_parser

    options = {}
    for name in COMMANDS:
        parser = build_parser(name)
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        options[name] = sorted({option for action in subparsers.choices[name]._actions
                                for option in action.option_strings if option.startswith("--") and option != "--help"})
    return options


def test_the_cli_reference_documents_every_command_and_option():
    page = text_of(DOCS / "cli.md")
    undocumented = {}
    for command, options in command_options().items():
        assert f"## `rrlsrn {command}`" in page, f"docs/cli.md has no section for rrlsrn {command}"
        missing = [option for option in options if not re.search(re.escape(option) + r"(?![\w-])", page)]
        if missing:
            undocumented[command] = missing
    assert undocumented == {}
