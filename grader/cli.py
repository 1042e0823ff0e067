"""The `grader` command: thin click wrappers over the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

# TensorFlow's C++ start-up chatter is not for students; it never affects a score either way.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from grader import __version__
from grader.assignment import Assignment
from grader.faults import DOCTOR, GraderFault, describe_fault

_DEFAULT_TIMEOUT = 60.0
_DEFAULT_MEMORY = "4G"


def _parse_memory(value: str) -> int:
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise click.BadParameter(f"Received: {value!r}. Give a size such as 4G, 512M or 2147483648.") from None


def _limits(timeout: float, memory: str):  # type: ignore[no-untyped-def]
    from grader.sandbox import Limits

    if timeout <= 0:
        raise click.BadParameter(f"Received: {timeout}. The timeout is in seconds and must be positive.")
    size = _parse_memory(memory)
    if size < 512 * 1024**2:
        raise click.BadParameter(
            f"Received: {memory}. TensorFlow needs at least 512M; the default is {_DEFAULT_MEMORY}."
        )
    return Limits(timeout=timeout, memory=size)


ISOLATION_MODES = {"namespaces": "root", "userns": "userns", "none": "none"}


class IsolationType(click.ParamType):
    """auto | namespaces | userns | none -> the sandbox's mode (None for auto), refused where it cannot work."""

    name = "auto|namespaces|userns|none"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if value is None or value == "auto":
            return None
        if value in ISOLATION_MODES.values() and value not in ISOLATION_MODES:
            return value  # a mode name given by the library (e.g. "root")
        if value not in ISOLATION_MODES:
            self.fail(f"Received: {value!r}, expected one of auto, namespaces, userns, none.", param, ctx)
        from grader.sandbox.process import mode_problem

        problem = mode_problem(ISOLATION_MODES[value])
        if problem:
            self.fail(f"--isolation {value} does not work on this machine: {problem}.", param, ctx)
        return ISOLATION_MODES[value]


class AssignmentType(click.ParamType):
    """An installed assignment's name -> its Assignment; "" (the default) -> the only one installed."""

    name = "name"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        from grader.assignment import Assignment, UnknownAssignment, load

        if isinstance(value, Assignment):
            return value
        try:
            return load(value or None)
        except UnknownAssignment as exc:
            self.fail(str(exc), param, ctx)


assignment_option = click.option(
    "--assignment", type=AssignmentType(), default="",
    help="Which installed assignment (default: the only one installed).")

isolation_option = click.option(
    "--isolation", type=IsolationType(), default="auto", show_default=True,
    help="How the submission's sandbox is isolated: namespaces (root: own mount, pid and network namespaces "
         "and a fresh uid), userns (an unprivileged user namespace), none (a plain subprocess with limits), "
         "auto (the strongest that works).")

limit_options = [
    click.option("--timeout", type=float, default=_DEFAULT_TIMEOUT, show_default=True,
                 help="Seconds each call into the submission may take."),
    click.option("--memory", default=_DEFAULT_MEMORY, show_default=True,
                 help="Memory limit of the submission's sandbox (e.g. 4G, 2048M)."),
    click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Training cache folder (default: $XDG_CACHE_HOME/convgrader). "
                      "Share it to train each model once."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the judge's training."),
    isolation_option,
    assignment_option,
    click.option("--submission-timeout", type=click.FloatRange(min=1), default=900.0, show_default=True,
                 help="Seconds for the whole grading of one submission; past it the submission is cut off, keeps "
                      "what was graded (status partial) and the batch goes on."),
]


def _with(options):  # type: ignore[no-untyped-def]
    def decorate(func):  # type: ignore[no-untyped-def]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="grader")
def main() -> None:
    """Autograder for deep-learning labs in Keras: check your work, grade a class, release an assignment.

    The installed assignments are listed by `grader list` (each command takes --assignment NAME)."""


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--skip-training", is_flag=True, help="Leave out the accuracy gates (seconds instead of minutes).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write results.json here.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report here.")
@click.option("--min-score", type=float, default=None, help="Exit with 1 when the score is below this.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the total.")
@click.option("-v", "--verbose", is_flag=True, help="List passed checks too.")
@_with(limit_options)
def check(path: Path, skip_training: bool, json_path: Path | None, junit_path: Path | None,
          summary_path: Path | None, html_path: Path | None, min_score: float | None, quiet: bool, verbose: bool,
          timeout: float, memory: str, cache_dir: Path | None, seed: int, isolation: str | None,
          assignment: Assignment, submission_timeout: float) -> None:
    """Check your work: grade PATH (a folder of modules, a notebook, or a .zip) with the public checks."""
    from grader.intake.submission import SubmissionError
    from grader.judge.grading import GradeOptions, grade
    from grader.reports import junit, summary, terminal
    from grader.reports.gradescope import write_results_json
    from grader.reports.html import to_html
    from grader.results import write_atomic

    options = GradeOptions(skip_training=skip_training, limits=_limits(timeout, memory), cache_dir=cache_dir,
                           seed=seed, progress=None if quiet else _epoch_printer(), isolation=isolation,
                           submission_timeout=submission_timeout, assignment=assignment.name)
    try:
        result = grade(path, options)
    except SubmissionError as exc:
        raise _usage_error(str(exc)) from None
    except GraderFault as exc:
        raise _GraderError(f"nothing was graded: {describe_fault(exc)}\nFix: {exc.fix or DOCTOR}.") from None
    click.echo(terminal.render_terminal(result, color=sys.stdout.isatty(), verbose=verbose, quiet=quiet,
                                        show_hidden=False))
    if result.extra.get("grader_fault"):
        raise _GraderError(f"the grader failed, so this is not a score (no report was written): "
                           f"{result.extra['grader_fault']}\nFix: {DOCTOR}.")
    if json_path:
        write_results_json(result, json_path)
    if junit_path:
        write_atomic(junit_path, junit.to_junit_xml([result], include_hidden=False))
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as handle:  # GitHub appends step summaries
            handle.write(summary.to_markdown_summary(result, show_hidden=False))
    if html_path:
        write_atomic(html_path, to_html(result, show_hidden=False))
    if min_score is not None and result.score < min_score:
        click.echo(f"score {result.score:g} is below the minimum {min_score:g}", err=True)
        sys.exit(1)


@main.command()
@click.argument("submissions", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the results: one sub-folder per submission, gradebook.csv, junit.xml.")
@click.option("--skip-training", is_flag=True, help="Leave out the accuracy gates.")
@click.option("--force", is_flag=True, help="Regrade submissions that already have results in --out.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Submissions graded in parallel. With two cores per job, each job also runs the short "
                   "fits of its checks ahead in a second sandbox.")
@click.option("--scheduler", default=None, help="Address of a Dask scheduler (tcp://host:8786) to grade on a cluster.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_with(limit_options)
def grade(submissions: tuple[Path, ...], out_dir: Path, skip_training: bool, force: bool, jobs: int,
          scheduler: str | None, quiet: bool, timeout: float, memory: str, cache_dir: Path | None, seed: int,
          isolation: str | None, assignment: Assignment, submission_timeout: float) -> None:
    """Grade a class: each submission in isolation, hidden checks included, results under --out."""
    from grader.batch.common import RECORD, BatchOptions
    from grader.batch.run import run_batch
    from grader.reports.terminal import render_batch_summary
    from grader.results import load_result

    options = BatchOptions(skip_training=skip_training, limits=_limits(timeout, memory), cache_dir=cache_dir,
                           seed=seed, force=force, jobs=jobs, scheduler=scheduler, quiet=quiet, isolation=isolation,
                           submission_timeout=submission_timeout, assignment=assignment.name)
    try:
        rows = run_batch(list(submissions), out_dir, options)
    except GraderFault as exc:
        raise _GraderError(f"nothing was graded: {describe_fault(exc)}\nFix: {exc.fix or DOCTOR}.") from None
    results = [load_result(out_dir / row.id / RECORD) for row in rows]
    click.echo(render_batch_summary(results, color=sys.stdout.isatty()))
    faults = [r.submission for r in results if r.extra.get("grader_fault")]
    if faults:
        raise _GraderError(f"the grader failed on {len(faults)} submission(s) ({', '.join(faults[:5])}): no score "
                           f"was written for them; run the same command again once fixed. Fix: {DOCTOR}.")


# --- grading platforms (Gradescope, PrairieLearn): `release --gradescope/--prairielearn` and `autograde` ---

platform_release_options = [
    click.option("--gradescope", "gradescope_zip", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Also write Gradescope's autograder zip (setup.sh and run_autograder at its root) here."),
    click.option("--prairielearn", "prairielearn_dir", type=click.Path(file_okay=False, path_type=Path),
                 default=None, help="Also write PrairieLearn's grading image recipe, entrypoint and info.json here."),
    click.option("--platform-skip-training", is_flag=True,
                 help="Bake --skip-training into the Gradescope/PrairieLearn grader: no accuracy gates "
                      "(seconds per submission instead of minutes)."),
]


def _release_platforms(root: Path, gradescope_zip: Path | None, prairielearn_dir: Path | None,
                       skip_training: bool, assignment: Assignment) -> None:
    if gradescope_zip is not None:
        from grader.platforms.gradescope import write_autograder_zip

        try:
            written = write_autograder_zip(root, gradescope_zip, assignment, skip_training=skip_training)
            click.echo(f"Gradescope autograder: {written}")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--gradescope") from None
    if prairielearn_dir is not None:
        from grader.platforms.prairielearn import write_prairielearn

        try:
            folder = write_prairielearn(root, prairielearn_dir, assignment, skip_training=skip_training)
            click.echo(f"PrairieLearn grader: {folder}")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--prairielearn") from None


@main.command()
@click.option("--platform", type=click.Choice(["gradescope", "prairielearn"]), required=True,
              help="Whose layout: gradescope (/autograder) or prairielearn (/grade).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The layout's root (default: $GRADER_AUTOGRADER_ROOT or /autograder for Gradescope, "
                   "$GRADER_PL_ROOT or /grade for PrairieLearn).")
@click.option("--skip-training", is_flag=True, help="Leave out the accuracy gates.")
@click.option("--hidden-visibility", type=click.Choice(["after_published", "after_due_date", "hidden"]),
              default="after_published", show_default=True,
              help="Gradescope: when students see the hidden checks (and, until then, not their total).")
@_with(limit_options)
def autograde(platform: str, root: Path | None, skip_training: bool, hidden_visibility: str, timeout: float,
              memory: str, cache_dir: Path | None, seed: int, isolation: str | None, assignment: Assignment,
              submission_timeout: float) -> None:
    """Inside a platform's grading container: grade its one submission (hidden checks included) and always
    write its results.json, even for an unusable submission or a grader fault (exit 0 once it is written)."""
    from grader.judge.grading import GradeOptions
    from grader.platforms.autograde import autograde as run
    from grader.reports.terminal import render_terminal

    options = GradeOptions(skip_training=skip_training, limits=_limits(timeout, memory), cache_dir=cache_dir,
                           seed=seed, isolation=isolation, submission_timeout=submission_timeout,
                           assignment=assignment.name)
    outcome = run(platform, root, options=options, hidden_visibility=hidden_visibility)  # type: ignore[arg-type]
    if outcome.result is not None:
        click.echo(render_terminal(outcome.result, color=False, verbose=False, quiet=False, show_hidden=True))
    if outcome.details:
        click.echo(outcome.details, err=True)
    click.echo(f"{outcome.kind}: wrote {outcome.results}")


@main.command()
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if the committed stubs or notebook are stale.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="The repository root holding solutions/ and assignments/.")
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the student bundle (stubs, notebook, grader with public checks only) here.")
@_with(platform_release_options)
@assignment_option
def release(check_only: bool, root: Path, bundle_dir: Path | None, gradescope_zip: Path | None,
            prairielearn_dir: Path | None, platform_skip_training: bool, assignment: Assignment) -> None:
    """Generate assignments/ (stubs and notebook) from solutions/."""
    from grader.authoring.release import release as do_release

    if not (root / "solutions").is_dir():
        raise click.ClickException(
            f"no solutions/ folder under {root.resolve()}; run from the repository root or pass --root."
        )
    files = do_release(root, assignment, check=check_only)
    if check_only and files:
        click.echo("stale (run `grader release` and commit):\n" + "\n".join(f"  {f}" for f in files), err=True)
        sys.exit(1)
    click.echo("up to date" if check_only else "\n".join(f"wrote {f}" for f in files) or "nothing to write")
    if bundle_dir is not None:
        from grader.authoring.bundle import write_bundle

        try:
            click.echo(f"student bundle: {write_bundle(root, bundle_dir, assignment)}")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--bundle") from None
    _release_platforms(root, gradescope_zip, prairielearn_dir, platform_skip_training, assignment)


@main.command(name="pack")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "archive", type=click.Path(dir_okay=False, path_type=Path), default=Path("submission.zip"),
              show_default=True, help="The zip to write.")
@assignment_option
def pack_command(path: Path, archive: Path, assignment: Assignment) -> None:
    """Pack your modules (or your notebook) into a small submission.zip to hand in."""
    from grader.intake.pack import PackError, pack

    try:
        report = pack(path, archive, assignment.modules)
    except PackError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {report.archive} ({report.size:,} bytes): {', '.join(report.files)}")


@main.command(name="list")
@click.option("--hidden/--no-hidden", default=True, help="Include hidden checks (instructors).")
@assignment_option
def list_checks(hidden: bool, assignment: Assignment) -> None:
    """List the assignment's exercises, checks, points and which checks are hidden."""
    from grader.authoring.catalog import list_checks as catalog

    try:
        lines = catalog(assignment, include_hidden=hidden)
    except GraderFault as exc:
        raise click.ClickException(f"{exc}\nFix: {exc.fix}") from None
    for line in lines:
        click.echo(line)


@main.command()
@isolation_option
@click.option("--reference", type=click.Path(exists=True, path_type=Path), default=None,
              help="A solution to grade as the last check (default: the checkout's reference, if any).")
@assignment_option
def doctor(isolation: str | None, reference: Path | None, assignment: Assignment) -> None:
    """Is this machine ready to grade? Checks Python, packages, data, sandbox, Keras, and grades the reference."""
    from grader.doctor import default_reference, examine

    ready = True
    for finding in examine(isolation, reference or default_reference(assignment.name), assignment):
        mark = "OK  " if finding.ok else ("FAIL" if finding.required else "note")
        click.echo(f"{mark}  {finding.name:<10} {finding.detail}")
        if not finding.ok and finding.fix:
            click.echo(f"      {'':<10} fix: {finding.fix}")
        ready = ready and (finding.ok or not finding.required)
    click.echo("ready" if ready else "not ready: fix what is marked FAIL above")
    if not ready:
        sys.exit(2)


def _epoch_printer():  # type: ignore[no-untyped-def]
    if not sys.stderr.isatty():
        return None

    def show(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        accuracy = logs.get("accuracy", logs.get("acc"))
        tail = f" accuracy {accuracy:.3f}" if accuracy is not None else ""
        click.echo(f"\r  training epoch {epoch}/{epochs}{tail}   ", err=True, nl=epoch == epochs)

    return show


class _UsageError(click.ClickException):
    exit_code = 2


class _GraderError(click.ClickException):
    """The grader itself failed (exit 2): its environment, sandbox, Keras or data, never the submission."""

    exit_code = 2

    def format_message(self) -> str:
        return "grader error: " + self.message

    def show(self, file=None) -> None:  # type: ignore[no-untyped-def]
        click.echo(self.format_message(), err=True)


def _usage_error(message: str) -> click.ClickException:
    return _UsageError(message)


if __name__ == "__main__":  # pragma: no cover
    main()
