"""The README as a user runs it: its library example runs, and each of its commands is one the command line takes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from handgrad import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_library_example_runs(tmp_path):
    section = README[README.index("## Using handgrad as a library") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)[1]
    env = {key: value for key, value in os.environ.items() if key != "HANDGRAD_DATA"}  # the data as set up
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fashion.safetensors").is_file() and (
        tmp_path / "runs" / "library" / "best.safetensors"
    ).is_file()
    assert "'test_accuracy'" in done.stdout


def _commands() -> list[str]:
    lines = "\n".join(_blocks("sh")).replace("\\\n", " ").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.lstrip().startswith(".venv/bin/handgrad")]


def test_every_handgrad_command_in_the_readme_is_one_the_command_line_takes():
    commands = _commands()
    assert len(commands) >= 12
    parser = cli._parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # a usage error exits: the test fails naming the command
    bare = [line for block in _blocks("sh") for line in block.splitlines() if line.startswith(("handgrad ", "pip "))]
    assert not bare, f"commands that are not on the PATH after the set-up: {bare}"


def test_no_text_installs_handgrad_from_the_package_index():
    """handgrad is installed from its checkout: no document, message or comment says ``pip install 'handgrad[..]'``."""
    texts = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("docs/**/*.py"), *ROOT.glob("src/**/*.py")]
    assert len(texts) > 20
    assert [str(path) for path in texts if "install 'handgrad[" in path.read_text()] == []


def test_the_files_the_readme_commands_name_are_in_the_checkout():
    named = re.findall(r"\bexamples/\S+", "\n".join(_blocks("sh")))
    assert "examples/shoe.png" in named and "examples/own_data.py" in named
    assert [path for path in named if not (ROOT / path).is_file()] == []


def test_the_own_data_example_writes_a_folder_and_an_npz_handgrad_reads(tmp_path):
    from handgrad.data import load

    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "own_data.py")],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    photos = load(tmp_path / "photos", test_split=0.2)
    arrays = load(tmp_path / "arrays.npz", test_split=0.2)
    assert photos.classes == ("Sneaker", "T-shirt-top", "Trouser")  # the folders' names, sorted
    assert arrays.classes == ("T-shirt/top", "Trouser", "Sneaker")  # the file's own
    assert photos.input_shape == (3, 28, 28) and arrays.input_shape == (1, 28, 28)
    assert len(photos.train_images) + len(photos.test_images) == len(arrays.train_images) + len(arrays.test_images)
