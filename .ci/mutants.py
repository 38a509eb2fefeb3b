"""Mutation testing of the modules that compute answers (``make mutants``; not part of CI).

Each module is mutated by mutmut against the tests that exercise it, in a copy of the
working tree (so the repository is never touched), and the score is printed as a table:
killed / (killed + survived + no tests). Surviving mutants are written, with their diffs,
to ``mutants-report/<module>.txt``; the ones that cannot change an answer are listed with
the reason in ``tests/README.md``. Usage::

    python .ci/mutants.py                          # every module below
    python .ci/mutants.py ppl/causal/noise.py      # one module
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> the tests that exercise it (JAX tests are left out: forked workers and XLA's
# threads do not mix, and the answers are computed by the same modules on torch; the files
# named *jax* by --ignore-glob, the JAX cases of torch files, e.g. "[jax]" or
# test_numpyro_autoguides_on_jax, by -k: in a forked worker they hang until mutmut's CPU
# limit, which mutmut counts as a kill)
MODULES = {
    "ppl/causal/noise.py": ["tests/causal/"],
    "ppl/causal/world_handler.py": ["tests/causal/"],
    "inference/weights.py": ["tests/inference/vi/", "tests/inference/test_importance.py",
                             "tests/inference/test_errors.py", "tests/inference/test_bad_input.py",
                             "tests/inference/test_silent.py::test_a_vectorised_site_outside_the_weighted_"
                             "plate_that_reads_its_latents_is_refused",
                             "tests/inference/test_silent.py::test_a_site_outside_the_weighted_plate_that_"
                             "reads_its_latents_is_refused"],
    "inference/vi/objectives.py": ["tests/inference/vi/", "tests/inference/test_errors.py"],
    "inference/vi/estimators.py": ["tests/inference/vi/", "tests/inference/test_errors.py",
                                   "tests/inference/test_bad_input.py"],
    "inference/importance.py": ["tests/inference/test_importance.py", "tests/inference/test_errors.py",
                                "tests/inference/test_bad_input.py",
                                "tests/causal/test_interventions_both_backends.py",
                                "tests/causal/test_queries_both_backends.py",
                                "tests/causal/test_counterfactual_oracles.py"]
    + [f"tests/inference/test_silent.py::{name}" for name in (
        "test_a_program_that_moves_the_particle_dimension_is_named",
        "test_evidence_impossible_under_the_model_is_named",
        "test_importance_with_impossible_or_infinite_evidence_raises",
        "test_one_particle_has_no_standard_error")],
    "inference/exact/elimination.py": ["tests/inference/test_exact_elimination.py", "tests/causal/",
                                       "tests/inference/test_exact_plated.py"],
    "inference/gflownet/losses.py": ["tests/inference/gflownet/test_losses.py",
                                     "tests/inference/gflownet/test_gflownet.py",
                                     "tests/inference/gflownet/test_gflownet_both_backends.py"],
}
STATUS = re.compile(r"^\s*(\S+): (killed|survived|no tests|timeout|suspicious|skipped|not checked|"
                    r"segfault|check was interrupted by user|caught by type check)\s*$")


def copy_tree(destination):
    """The working tree as git sees it (tracked and untracked, not ignored files)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def configure(workdir, module, tests):
    """mutmut reads its settings from setup.cfg when pyproject.toml has no [tool.mutmut]."""
    lines = ["[mutmut]", "source_paths =", "    ppl", "    inference", "only_mutate =",
             f"    {module}", "also_copy =", "    models/", "    benchmarks/", "    tutorials/",
             "pytest_add_cli_args_test_selection ="]
    lines += [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -x", "    -q",
              "    --ignore-glob=*jax*",
              "    -k", "    not jax and not numpyro"]
    (workdir / "setup.cfg").write_text("\n".join(lines) + "\n")


def mutate(module, tests, children, report_dir):
    mutmut = [sys.executable, "-m", "mutmut"]
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        workdir = Path(tmp)
        copy_tree(workdir)
        configure(workdir, module, tests)
        env = {**os.environ, "PYTHONPATH": ""}
        run = subprocess.run(mutmut + ["run", "--max-children", str(children)], cwd=workdir,
                             env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"mutmut failed on {module}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
        listing = subprocess.run(mutmut + ["results", "--all", "true"], cwd=workdir, env=env,
                                 capture_output=True, text=True, check=True).stdout
        counts, survivors = {}, []
        for line in listing.splitlines():
            match = STATUS.match(line)
            if match:
                name, status = match.groups()
                counts[status] = counts.get(status, 0) + 1
                if status in ("survived", "no tests"):
                    survivors.append((name, status))
        lines = []
        for name, status in survivors:
            shown = subprocess.run(mutmut + ["show", name], cwd=workdir, env=env,
                                   capture_output=True, text=True).stdout
            # the function is shown dedented: a changed top line reads "-def ..." or "+def ..."
            diff = [line for line in shown.splitlines()
                    if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))]
            lines += [f"=== {name} ({status})"] + diff
    report = report_dir / (module.replace("/", ".") + ".txt")
    report.write_text("\n".join(lines) + "\n")
    return counts, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    parser.add_argument("--children", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    report_dir = ROOT / "mutants-report"
    report_dir.mkdir(exist_ok=True)
    rows = []
    for module in args.modules:
        if module not in MODULES:
            raise SystemExit(f"no test selection for {module!r}; modules: {', '.join(MODULES)}")
        counts, report = mutate(module, MODULES[module], args.children, report_dir)
        killed = counts.get("killed", 0) + counts.get("timeout", 0)
        alive = counts.get("survived", 0) + counts.get("no tests", 0)
        score = killed / (killed + alive) if killed + alive else float("nan")
        rows.append((module, killed + alive, killed, alive, score, report))
        print(f"{module}: {killed} killed, {alive} alive of {killed + alive}, score {score:.1%}",
              flush=True)
    print("\n| module | mutants | killed | survived | score |\n|---|---|---|---|---|")
    for module, total, killed, alive, score, _ in rows:
        print(f"| {module} | {total} | {killed} | {alive} | {score:.1%} |")


if __name__ == "__main__":
    main()
