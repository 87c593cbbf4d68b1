"""sdk/python/README.md's porting table, row by row: every Azure ML import has its Paddock import, and the
names it brings exist; the table of concepts names classes and methods that exist."""
import importlib
import os
import re

from conftest import SDK

README = os.path.join(SDK, "README.md")


def _table(title):
    rows, inside = [], False
    with open(README, encoding="utf-8") as f:
        for line in f:
            if line.startswith("| " + title):
                inside = True
                continue
            if inside and not line.startswith("|"):
                break
            if inside and not line.startswith("|---"):
                rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    assert rows, "no table %r in the README" % title
    return rows


def _import(stmt, names=None):
    m = re.match(r"from ([\w.]+) import (.+)$", stmt)
    assert m, stmt
    module = importlib.import_module(m.group(1))
    wanted = names if m.group(2).strip() == "..." else [n.strip() for n in m.group(2).split(",")]
    for n in wanted:
        assert hasattr(module, n), "%s has no %s" % (m.group(1), n)
    return wanted


def test_every_import_row_works():
    rows = _table("Azure ML (`azureml-core`) | Paddock |")
    assert len(rows) >= 10
    for azure, paddock in rows:
        a = re.search(r"`(from azureml[^`]+)`", azure).group(1)
        names = [n.strip() for n in a.split(" import ", 1)[1].split(",")]
        for p in re.findall(r"`(from paddock[^`]+)`", paddock):
            _import(p, names)
        if "also `from paddock import ...`" in paddock:
            _import("from paddock import ...", names)


def test_every_concept_row_names_what_exists():
    import paddock.compute as c
    from paddock.compute import AmlCompute, ComputeInstance
    for row in _table("Azure ML concept | Paddock type | notes |"):
        for cls in re.findall(r"`(\w+Compute\w*)`", row[0]):
            assert hasattr(c, cls), cls
    for method in ("add_identity", "remove_identity", "get_active_runs"):
        assert callable(getattr(AmlCompute, method))
    for method in ("start", "stop", "restart", "delete"):
        assert callable(getattr(ComputeInstance, method))


def test_every_v1_call_in_the_runs_table_exists():
    from paddock import Environment, Experiment, Run, RunConfiguration
    from paddock.compute import AmlCompute, ComputeInstance
    scope = {"run": Run, "Run": Run, "Experiment": Experiment, "exp": Experiment, "Environment": Environment,
             "env": Environment, "RunConfiguration": RunConfiguration, "AmlCompute": AmlCompute,
             "ComputeInstance": ComputeInstance}
    for title in ("v1 call | what Paddock does |", "v1 | Paddock |"):
        for row in _table(title):
            for expr in re.findall(r"`([A-Za-z_.]+)\(", row[0]):
                owner, _, name = expr.rpartition(".")
                owners = [scope[o] for o in owner.split("/") if o in scope] if owner else [Run, Experiment]
                assert any(hasattr(o, name) for o in owners), expr
            for bare in re.findall(r"`(\w+)`", row[0]):
                if bare.startswith(("log_", "upload_", "get_", "set_", "remove_")) or bare in ("tag", "complete", "fail"):
                    assert hasattr(Run, bare), bare


def test_pip_install_of_the_sdk_holds_every_module(tmp_path):
    """The documented install, ``pip install ./sdk/python`` (here into a directory, without fetching a build
    backend: the node's setuptools)."""
    import subprocess
    import sys
    import pytest
    try:
        import setuptools
        from setuptools.command import bdist_wheel  # noqa: F401  (setuptools >= 70.1)
    except ImportError:
        try:
            import wheel  # noqa: F401
        except ImportError:
            pytest.skip("setuptools with bdist_wheel (or wheel) is not installed here: pip would fetch them")
    target = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                        "--no-index", "--target", str(target), SDK], capture_output=True, text=True,
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    code = ("import paddock, paddock.compute.amlcompute, paddock.compute.adla, paddock.conda_dependencies;"
            "print(paddock.__file__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path),
                       env=dict(os.environ, PYTHONPATH=str(target)))
    assert p.returncode == 0 and p.stdout.startswith(str(target)), p.stdout + p.stderr
    assert (target / "paddock" / "py.typed").exists()


def test_pyproject_names_every_package():
    """``pip install ./sdk/python`` installs what pyproject.toml names: every package of the SDK."""
    import re as _re
    with open(os.path.join(SDK, "pyproject.toml"), encoding="utf-8") as f:
        listed = set(_re.search(r'packages = \[([^\]]*)\]', f.read()).group(1).replace('"', "").replace(" ", "")
                     .split(","))
    found = {os.path.relpath(d, SDK).replace(os.sep, ".") for d, _, files in os.walk(os.path.join(SDK, "paddock"))
             if "__init__.py" in files}
    assert listed == found
