"""The design notes stay inside the repository and their links resolve.

  * Every relative Markdown link of README.md and docs/*.md names an existing file, and its
    #anchor, if any, a heading of the Markdown file it points to (GitHub's heading ids).
  * docs/README.md, the index, links every page of docs/.
  * No file of the repository refers to design notes kept outside it.

Plain Python (no TensorFlow): it reads text files only.
"""

import os
import pathlib
import re

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_DOCS = _ROOT / "docs"
# Notes that once lived outside the repository; docs/ replaced them. Spelt in two parts so that
# this file does not match itself.
_OUTSIDE_NOTES = ("DESIGN" + ".md", "STYLE" + ".md", "../shared/" + "DESIGN")
_SKIPPED_DIRS = {".git", ".venv", "runs", "__pycache__", ".pytest_cache", "node_modules"}
_MAX_BYTES = 2_000_000  # larger files are data, not text to search

_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _markdown_files():
  return [_ROOT / "README.md", *sorted(_DOCS.glob("*.md"))]


def _prose(text):
  """Markdown text without fenced code blocks and inline code spans (links there are code)."""
  return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _links(path):
  """The link targets of a Markdown file, in order."""
  return _LINK.findall(_prose(path.read_text(encoding="utf-8")))


def github_anchor(heading):
  """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
  text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
  text = re.sub(r"[^\w\- ]", "", text.strip().lower())
  return text.replace(" ", "-")


def anchors(path):
  """The ids of a Markdown file's headings, repeated ones numbered as GitHub does."""
  seen, ids = {}, set()
  for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
    anchor = github_anchor(heading)
    count = seen.get(anchor, 0)
    seen[anchor] = count + 1
    ids.add(anchor if count == 0 else f"{anchor}-{count}")
  return ids


def test_github_anchor():
  assert github_anchor("The paper's settings") == "the-papers-settings"
  assert github_anchor("What a run leaves in `--model_dir`") == "what-a-run-leaves-in---model_dir"
  assert github_anchor("The policy p_θ (eq. 7)") == "the-policy-p_θ-eq-7"


def test_markdown_files_exist():
  assert (_ROOT / "README.md").is_file(), _ROOT
  assert (_DOCS / "README.md").is_file(), _DOCS


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(_ROOT)))
def test_relative_links_resolve(path):
  broken = []
  for target in _links(path):
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:, ...
      continue
    file_part, _, anchor = target.partition("#")
    linked = (path.parent / file_part).resolve() if file_part else path
    if not linked.exists():
      broken.append(f"{target}: no such file {linked}")
    elif not linked.is_relative_to(_ROOT):
      broken.append(f"{target}: outside the repository")
    elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
      broken.append(f"{target}: no heading with id #{anchor} in {linked.relative_to(_ROOT)}")
  assert not broken, f"{path.relative_to(_ROOT)}:\n" + "\n".join(broken)


def test_docs_index_links_every_page():
  linked = {(_DOCS / t.partition("#")[0]).resolve() for t in _links(_DOCS / "README.md")}
  missing = [p.name for p in sorted(_DOCS.glob("*.md")) if p.name != "README.md"
             and p.resolve() not in linked]
  assert not missing, f"docs/README.md does not link {missing}"


def _repository_text_files():
  """(path, text) of the repository's text files; .git, .venv, runs/ and the like pruned."""
  for folder, subfolders, files in os.walk(_ROOT):
    subfolders[:] = sorted(d for d in subfolders
                           if d not in _SKIPPED_DIRS and not d.startswith("bazel-"))
    for name in sorted(files):
      path = pathlib.Path(folder, name)
      if path.is_file() and path.stat().st_size <= _MAX_BYTES:
        data = path.read_bytes()
        if b"\0" not in data:
          yield path, data.decode("utf-8", errors="replace")


def test_nothing_refers_to_notes_outside_the_repository():
  found = [f"{path.relative_to(_ROOT)}:{number}: {line.strip()}"
           for path, text in _repository_text_files()
           for number, line in enumerate(text.splitlines(), 1)
           if any(name in line for name in _OUTSIDE_NOTES)]
  assert not found, ("These lines refer to notes outside the repository; point them to docs/ "
                     "(docs/README.md lists the pages):\n" + "\n".join(found))
