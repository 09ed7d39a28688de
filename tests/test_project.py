"""The project's own files agree with each other."""

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    """Every requirement pyproject.toml declares, its extras' included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | {r for extra in project["optional-dependencies"].values() for r in extra}


def _pinned(line: str, where: str) -> tuple[str, Version]:
    """The normalized name and the version of an exact pin `name==version`."""
    requirement = Requirement(line)
    specifiers = list(requirement.specifier)
    assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{where}: {line!r} is not an exact pin name==version"
    return canonicalize_name(requirement.name), Version(specifiers[0].version)


def test_environment_yml_has_the_dependencies_of_pyproject():
    declared = _declared()
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    conda = {d for d in pip if not d.startswith("-")}
    assert conda == declared, f"only in environment.yml: {conda - declared}; only in pyproject.toml: {declared - conda}"
    assert "-c constraints.txt" in pip  # the versions that `make` installs
    assert {canonicalize_name(Requirement(r).name) for r in declared} >= {
        "tensorflow", "tensorboard", "jupyter-book", "nbval", "papermill", "pytest"}


def test_constraints_pin_every_dependency_inside_its_declared_range():
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    pins = dict(_pinned(line, "constraints.txt") for line in lines)
    assert len(pins) == len(lines), "constraints.txt pins a package twice"
    assert "p2p" not in pins
    for requirement in map(Requirement, _declared()):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt pins no {name}: regenerate it as its first lines say"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: "
            "regenerate it as its first lines say")


def test_the_lowest_tensorflow_target_installs_the_lowest_versions_declared():
    lowest = re.search(r"^LOWEST_TF := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    pins = dict(_pinned(pin, "Makefile's LOWEST_TF") for pin in lowest)
    assert set(pins) == {"tensorflow", "keras"}
    declared = {canonicalize_name(r.name): r for r in map(Requirement, _declared())}
    for name, version in pins.items():
        (bound,) = [s for s in declared[name].specifier if s.operator == ">="]
        assert declared[name].specifier.contains(version) and version.release[:2] == Version(bound.version).release[:2], (
            f"Makefile's LOWEST_TF installs {name}=={version}, not the lowest {declared[name]} of pyproject.toml")


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme


def test_the_core_never_imports_the_lab():
    # p2p/*.py is pix2pix itself, p2p/runtime its machinery; p2p.lab the book's tools, which may import the core
    # but not the other way round.
    # __main__.py is the command line's entry point: train and translate, then the lab's commands (p2p.lab.cli).
    import ast

    for module in sorted([*(ROOT / "p2p").glob("*.py"), *(ROOT / "p2p" / "runtime").glob("*.py")]):
        if module.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name.startswith("p2p.lab") for name in names), f"{module.name} imports {names}"
            if isinstance(node, ast.ImportFrom) and node.module == "p2p":
                assert "lab" not in [alias.name for alias in node.names], f"{module.name} imports p2p.lab"


def test_the_core_fits_the_sites_code_column():
    # The chapters print the core with inspect.getsource; on the site a code block holds
    # about 88 characters (book/_css/code.css), and a longer line scrolls sideways.
    # p2p/ruff.toml makes ruff check the same.
    core = sorted([*(ROOT / "p2p").glob("*.py"), *(ROOT / "p2p" / "runtime").glob("*.py")])
    assert len(core) > 10, core  # the glob found the core
    too_long = [f"{module.relative_to(ROOT)}:{number}: {len(line)} characters"
                for module in core
                for number, line in enumerate(module.read_text().splitlines(), 1)
                if len(line) > 88]
    assert not too_long, "lines longer than 88 characters:\n" + "\n".join(too_long)


def test_no_parameter_shadows_a_function_of_its_module():
    # the printed code needs no aliases such as `_upsample = upsample` when a parameter takes a function's name
    import ast

    shadows = []
    for module in sorted([*(ROOT / "p2p").glob("*.py"), *(ROOT / "p2p" / "runtime").glob("*.py")]):
        tree = ast.parse(module.read_text())
        defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.Lambda)):
                arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                shadows += [f"{module.name}: {getattr(node, 'name', 'lambda')}({a.arg})" for a in arguments
                            if a.arg in defined]
    assert not shadows, shadows
