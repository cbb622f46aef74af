"""Every command in README.md and docs/*.md runs as written (issue 23).

Each document is one test, marked ``e2e`` (CI runs ``pytest -m e2e`` in a step of its own): its
fenced blocks run in order in a fresh folder, a copy of the repository's tracked files (``git
ls-files``), as a reader following the page in one terminal would run them. The first block that
fails fails the test, with the document, the block's line and its stderr.

How a fenced block is read, by the first word of its info string (its language):

- ``bash``, ``sh``, ``shell``: run by ``bash -e -o pipefail``. ``console``: its ``$ `` lines are
  the commands (a line ending in a backslash goes on), the other lines are their output.
- ``python``: run by the environment's python from stdin, so the current folder is importable.
- A block whose info string names a file, ```` ```python title="my_package/module.py" ````, is that
  file: its text is written there (folders made as needed), not run.
- A block right after the paragraph ``*Not run by the docs test: REASON.*`` (the whole paragraph
  before its fence, which may wrap over lines) is not run. The page shows it in italics, so
  readers see why.
- Any other language is not run: ``text`` for output or a layout, ``toml`` for part of a file, and
  so on. Every fence names its language; a bare ```` ``` ```` fails
  ``test_every_fence_names_its_language``, which is not e2e and runs with the other tests.

One terminal: a block starts in the folder where the previous shell block ended (a ``cd`` carries
over, variables do not), and a file block's path is relative to that folder. holo-bench's
environment is active, as after ``source .venv/bin/activate``: the folder's ``.venv`` is a
throwaway virtual environment layered over the repository's (a ``.pth`` file adds its
site-packages, editable install included) with the same console scripts, first on ``PATH``. So
``.venv/bin/holo-bench ...`` and ``holo-bench ...`` both work as written, and what a document
installs (``pip install -e .``) goes into that layer. A link to the shared ``.venv`` would leave a
document's optimizer registered there, where ``tests/test_optimizer_contract.py`` would find it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(f"docs/{path.name}" for path in (REPO / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell"}
RUN = SHELL | {"console", "python"}
MARKER = re.compile(r"\*Not run by the docs test: (?P<reason>\S.*)\*")
OPENING = re.compile(r"(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)")
TITLE = re.compile(r'\btitle="(?P<path>[^"]+)"')
BLOCK_TIMEOUT = 600  # seconds; the longest block run today takes about a minute


@dataclass(frozen=True)
class Block:
    """A fenced block: ``line`` is its opening fence's (from 1), ``language`` the info string's
    first word (lowercase, "" if none), ``file`` the path its info string names, ``skip`` the
    reason on the marker line before it."""

    line: int
    language: str
    file: str | None
    skip: str | None
    text: str

    @property
    def runs(self) -> bool:
        return self.skip is None and self.file is None and self.language in RUN


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks of a markdown document, in order (CommonMark's fences: three or more
    backticks or tildes; the closing fence is at least as long)."""
    lines = markdown.splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = OPENING.fullmatch(lines[i])
        if not opening or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        fence, indent, info = opening["fence"], len(opening["indent"]), opening["info"].strip()
        closing = re.compile(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*")
        end = next((j for j in range(i + 1, len(lines)) if closing.fullmatch(lines[j])), None)
        if end is None:
            raise ValueError(f"line {i + 1}: the fence {fence}{info} is never closed")
        marker, title = MARKER.fullmatch(_paragraph_before(lines, i)), TITLE.search(info)
        text = "".join(_dedent(line, indent) + "\n" for line in lines[i + 1:end])
        found.append(Block(line=i + 1, language=info.split()[0].lower() if info else "",
                           file=title["path"] if title else None,
                           skip=marker["reason"] if marker else None, text=text))
        i = end + 1
    return found


def _paragraph_before(lines: list[str], i: int) -> str:
    """The paragraph that ends right above line ``i`` (blank lines skipped), on one line."""
    end = i
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    start = end
    while start > 0 and lines[start - 1].strip() and not OPENING.fullmatch(lines[start - 1]):
        start -= 1
    return " ".join(line.strip() for line in lines[start:end])


def _dedent(line: str, indent: int) -> str:
    """A fence's content line without the fence's own indentation (CommonMark)."""
    return line[min(indent, len(line) - len(line.lstrip(" "))):]


def console_commands(text: str) -> str:
    """The commands of a ``console`` block: its ``$ `` lines and the lines they continue."""
    commands, going_on = [], False
    for line in text.splitlines():
        if line.startswith("$ ") or going_on:
            commands.append(line.removeprefix("$ ") if not going_on else line)
            going_on = line.endswith("\\")
    return "".join(command + "\n" for command in commands)


def test_blocks_reads_languages_files_markers_and_lines():
    markdown = textwrap.dedent("""\
        # A page

        ```bash
        echo one
        ```

        *Not run by the docs test: takes about 2 hours
        on 2 cores.*

        ```python
        print("long")
        ```
        Save it:
        ```python title="my_package/module.py"
        X = 1
        ```
        ````text
        ```bash
        not a block of its own
        ```
        ````
        - a list item:

          ```sh
          echo indented
          ```
        """)
    assert blocks(markdown) == [
        Block(3, "bash", None, None, "echo one\n"),
        Block(10, "python", None, "takes about 2 hours on 2 cores.", 'print("long")\n'),
        Block(14, "python", "my_package/module.py", None, "X = 1\n"),
        Block(17, "text", None, None, "```bash\nnot a block of its own\n```\n"),
        Block(24, "sh", None, None, "echo indented\n"),
    ]
    assert [block.runs for block in blocks(markdown)] == [True, False, False, False, True]


def test_a_marker_is_the_whole_paragraph_right_before_the_fence():
    markdown = "*Not run by the docs test: slow.*\n\nprose in between\n```bash\nsleep 9\n```\n"
    assert blocks(markdown)[0].skip is None
    markdown = "Prose, then\n*Not run by the docs test: slow.*\n```bash\nsleep 9\n```\n"
    assert blocks(markdown)[0].skip is None


def test_an_unclosed_fence_is_an_error():
    with pytest.raises(ValueError, match="line 2: the fence ```bash is never closed"):
        blocks("text\n```bash\necho\n")


def test_console_blocks_run_their_prompted_lines_only():
    text = "$ holo-bench run \\\n    --seeds 0\noutput line\n$ ls runs\nga\n"
    assert console_commands(text) == "holo-bench run \\\n    --seeds 0\nls runs\n"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_fence_names_its_language(document):
    """A bare fence would be neither run nor marked: output is ``text``, a command is ``bash``."""
    bare = [block.line for block in blocks((REPO / document).read_text()) if not block.language]
    assert not bare, (f"{document}: the fences at lines {bare} name no language: `text` for "
                      "output, `bash` or `python` for what runs (see tests/test_docs.py)")


def test_a_page_runs_as_in_one_terminal(tmp_path):
    """A cd carries over to the next block, a file block lands in the current folder, and python
    runs there, with that folder importable, in the active environment."""
    markdown = textwrap.dedent("""\
        ```bash
        mkdir work && cd work
        ```
        ```python title="my_package/module.py"
        ANSWER = 42
        ```
        ```python
        import sys
        from pathlib import Path

        import my_package.module

        Path("seen.txt").write_text(f"{my_package.module.ANSWER} {sys.prefix}")
        ```
        """)
    (tmp_path / "doc").mkdir()
    run_blocks("page.md", markdown, tmp_path / "doc", Path(sys.prefix))
    assert (tmp_path / "doc/work/seen.txt").read_text() == f"42 {tmp_path / 'doc/.venv'}"


def test_what_a_page_installs_stays_in_its_own_environment(tmp_path):
    markdown = textwrap.dedent("""\
        ```bash
        mkdir -p tiny/tiny_module && printf '[project]\\nname = "tiny-module"\\nversion = "0"\\n' \\
            > tiny/pyproject.toml
        pip install -q --no-deps --no-build-isolation -e tiny
        ```
        """)
    (tmp_path / "doc").mkdir()
    run_blocks("page.md", markdown, tmp_path / "doc", Path(sys.prefix))
    check = "import importlib.metadata as m; print(m.version('tiny-module'))"
    layer = subprocess.run([str(tmp_path / "doc/.venv/bin/python"), "-c", check],
                           capture_output=True, text=True)
    base = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert (layer.stdout, base.returncode) == ("0\n", 1), (layer.stderr, base.stdout)


def test_a_marked_block_is_not_run(tmp_path):
    (tmp_path / "doc").mkdir()
    run_blocks("page.md", "*Not run by the docs test: fails.*\n```bash\nexit 1\n```\n",
               tmp_path / "doc", Path(sys.prefix))


def test_a_failing_block_names_the_document_its_line_and_its_stderr(tmp_path):
    markdown = "Intro.\n\n```bash\necho fine\nls no-such-file\necho never\n```\n"
    (tmp_path / "doc").mkdir()
    with pytest.raises(BlockFailed, match=r"(?s)^page.md:3: this bash block exited with 2, in "
                       r"doc:\n    echo fine\n    ls no-such-file.*stderr:\n.*no-such-file"):
        run_blocks("page.md", markdown, tmp_path / "doc", Path(sys.prefix))


@pytest.mark.e2e
@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_runs_as_written(document, tmp_path):
    markdown = (REPO / document).read_text()
    if not any(block.runs for block in blocks(markdown)):
        return
    copy_tracked_files(REPO, tmp_path / "repo")
    try:
        run_blocks(document, markdown, tmp_path / "repo", REPO / ".venv")
    except BlockFailed as failure:
        pytest.fail(str(failure), pytrace=False)


class BlockFailed(Exception):
    """A block exited with an error or ran past the timeout; the message says which and why."""


def run_blocks(document: str, markdown: str, folder: Path, base: Path) -> None:
    """Run the blocks of ``markdown`` in order, starting in ``folder``, with an environment layered
    over the one at ``base`` made at ``folder/.venv`` and active; the first failure raises
    BlockFailed."""
    venv = layered_environment(base, folder / ".venv")
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONHOME", None)
    where, cwd = folder.parent / f"{folder.name}.cwd", folder
    for block in blocks(markdown):
        if block.skip is not None:
            continue
        if block.file:
            path = (cwd / block.file).resolve()
            if not path.is_relative_to(folder.resolve()):
                raise BlockFailed(f"{document}:{block.line}: {block.file} is outside the folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
            continue
        if not block.runs:
            continue
        if block.language == "python":
            command, stdin = [str(venv / "bin" / "python"), "-"], block.text
        else:
            script = block.text if block.language in SHELL else console_commands(block.text)
            trap = f"trap {shlex.quote(f'pwd > {shlex.quote(str(where))}')} EXIT\n"
            command, stdin = ["bash", "-e", "-o", "pipefail", "-c", trap + script], None
        returncode, stdout, stderr, seconds = _run(command, stdin, cwd, env)
        print(f"{document}:{block.line} ({block.language}): exit {returncode}, {seconds:.1f} s")
        if returncode != 0:
            how = (f"ran past {BLOCK_TIMEOUT} s" if returncode is None
                   else f"exited with {returncode}")
            raise BlockFailed(
                f"{document}:{block.line}: this {block.language} block {how}, in "
                f"{cwd.relative_to(folder.parent)}:\n{textwrap.indent(block.text, '    ')}"
                f"stderr:\n{_tail(stderr)}\nstdout:\n{_tail(stdout)}")
        if block.language != "python":
            cwd = Path(where.read_text().strip())


def _run(command: list[str], stdin: str | None, cwd: Path, env: dict):
    """(exit status or None past the timeout, stdout, stderr, seconds); past the timeout the
    block's whole process group is killed, pool workers included."""
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, text=True, start_new_session=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(stdin, timeout=BLOCK_TIMEOUT)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        returncode = None
    return returncode, stdout, stderr, time.monotonic() - start


def _tail(text: str, characters: int = 4000) -> str:
    return text if len(text) <= characters else "..." + text[-characters:]


def copy_tracked_files(repo: Path, folder: Path) -> None:
    """``folder``: the files git tracks in ``repo``, as they are in its working tree."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True,
                            text=True)
    if listed.returncode != 0:
        pytest.fail(f"the docs test copies the files git tracks: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        source = repo / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name, follow_symlinks=False)


def layered_environment(base: Path, venv: Path) -> Path:
    """A virtual environment at ``venv`` that sees every package of the one at ``base`` and has its
    console scripts, running on its own interpreter; what is installed into it stays in it."""
    if not (base / "bin" / "python").exists():
        pytest.fail(f"the docs test runs in {base}, which does not exist: bash scripts/install.sh")
    subprocess.run([str(base / "bin" / "python"), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    # addsitedir, not a plain path line: the base's own .pth files (its editable install of
    # holo-bench) must run too.
    (_site_packages(venv) / "_docs_test_base.pth").write_text(
        f"import site; site.addsitedir({str(_site_packages(base))!r})\n")
    python = venv / "bin" / "python"
    # pip's form for an interpreter path too long for a #! line (127 bytes on Linux)
    shebang = (f"#!{python}\n" if len(str(python)) < 120 else
               f"#!/bin/sh\n'''exec' {shlex.quote(str(python))} \"$0\" \"$@\"\n' '''\n")
    for script in sorted((base / "bin").iterdir()):
        target = venv / "bin" / script.name
        if target.exists() or target.is_symlink():
            continue
        lines = script.read_bytes().split(b"\n")
        if lines[0].startswith(b"#!") and b"python" in lines[0]:
            body = lines[1:]
        elif lines[0] == b"#!/bin/sh" and len(lines) > 3 and lines[1].startswith(b"'''exec'"):
            body = lines[3:]
        else:  # not a console script: a binary, or a shell script
            target.symlink_to(script)
            continue
        target.write_bytes(shebang.encode() + b"\n".join(body))
        target.chmod(0o755)
    return venv


def _site_packages(venv: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return Path(subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                               text=True, check=True).stdout.strip())
