"""The manual builds with mkdocs in strict mode (what `make docs` and CI run), a broken link or anchor fails that
build, and the links of README.md and CHANGELOG.md (outside the site, so mkdocs does not see them) resolve."""

import re
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_site_builds_strictly(tmp_path):
    build(load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(tmp_path / "site")))
    assert (tmp_path / "site" / "deviations.html").is_file()


def test_a_broken_anchor_fails_the_strict_build(tmp_path):
    settings = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the other page](other.md#no-such-heading).\n")
    (docs / "other.md").write_text("# Other\n\n## A heading\n")
    config = {"site_name": "t", "docs_dir": str(docs), "site_dir": str(tmp_path / "site"),
              "validation": settings["validation"], "nav": ["index.md", "other.md"]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    with pytest.raises(Abort):
        build(load_config(str(tmp_path / "mkdocs.yml"), strict=True))


def anchors(page: Path) -> set[str]:
    headings = [line.lstrip("#").strip() for line in page.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    return {slugify(heading.replace("`", ""), "-") for heading in headings}


@pytest.mark.parametrize("name", ["README.md", "CHANGELOG.md", "ARCHITECTURE.md"])
def test_the_links_outside_the_site_resolve(name):
    broken = []
    for target in LINK.findall((ROOT / name).read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        page = ROOT / path if path else ROOT / name
        if not page.is_file() or (anchor and anchor not in anchors(page)):
            broken.append(target)
    assert not broken, f"{name}: links to no file or heading: {broken}"
