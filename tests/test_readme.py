"""README.md's usage example runs as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_usage_example_runs():
    text = README.read_text()
    code = re.search(r"## Use a loss\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    assert namespace["v"].shape == (64, 10)


def test_readme_commands_match_ci():
    ci = (README.parent / ".ci" / "run").read_text()
    install = re.search(r"```bash\n(pip install torch.*?)\n```", README.read_text()).group(1)
    assert install.replace("pip install", "python -m pip install") in ci
    test = re.search(r"```bash\n(python -m pytest.*?)\n```", README.read_text()).group(1)
    assert test in ci.splitlines()


def test_every_package_folder_is_installed():
    """pyproject lists packages by hand (the _data ones map other folders): a new folder must be listed."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(root).parts) for p in (root / "symloss").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert folders <= listed, sorted(folders - listed)
