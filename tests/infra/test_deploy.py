"""``recs deploy``: the steps in order, a failed step stops the rest, and ``--dry-run`` needs no AWS credentials."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from infra import deploy
from infra.config import REPO_ROOT
from infra.deploy import CDK_CLI, DeployError, DeployPlan, parse_context, run_deploy
from infra.preflight import CheckResult

PINNED = {"opensearchServiceLinkedRole": "create"}  # given, so the deploy does not look the role up


class Recorder:
    def __init__(self, codes: Sequence[int] = ()) -> None:
        self.commands: list[list[str]] = []
        self.smoked: list[Any] = []
        self._codes = list(codes)

    def run(self, command: Sequence[str], env: Mapping[str, str]) -> int:
        self.commands.append(list(command))
        assert str(Path(sys.executable).parent) in env["PATH"].split(os.pathsep)[0]  # the venv's node first
        return self._codes.pop(0) if self._codes else 0

    def smoke(self, args: Any, session: Any) -> None:
        self.smoked.append(args)


def _preflight_answers(monkeypatch: pytest.MonkeyPatch, ok: bool) -> None:
    monkeypatch.setattr(deploy.Preflight, "run_all",
                        lambda self: [CheckResult("credentials", True, "fine"), CheckResult("cdk-bootstrap", ok, "x")])


def test_the_steps_run_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    _preflight_answers(monkeypatch, ok=True)
    recorder, lines = Recorder(), []
    plan = DeployPlan(context={**PINNED, "apiAuth": "iam"}, region="eu-west-1")
    run_deploy(plan, dry_run=False, session_factory=lambda: object(), run=recorder.run, smoke=recorder.smoke,
               say=lines.append)
    cdk = recorder.commands[-1]
    assert cdk[:6] == [str(CDK_CLI), "deploy", "--all", "--require-approval", "never", "--no-notices"]
    assert cdk[cdk.index("--app") + 1] == f"{sys.executable} -m infra.app"
    assert "apiAuth=iam" in cdk and "opensearchServiceLinkedRole=create" in cdk
    (args,) = recorder.smoked
    assert (args.prefix, args.region, args.skip_upload) == ("recs", "eu-west-1", False)
    assert [line[:5] for line in lines if line.startswith("[")] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]


def test_a_failed_preflight_deploys_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _preflight_answers(monkeypatch, ok=False)
    recorder = Recorder()
    with pytest.raises(DeployError, match="preflight failed"):
        run_deploy(DeployPlan(context=dict(PINNED)), dry_run=False, session_factory=lambda: object(),
                   run=recorder.run, smoke=recorder.smoke, say=lambda _: None)
    assert recorder.commands == [] and recorder.smoked == []


def test_a_failed_cdk_deploy_uploads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _preflight_answers(monkeypatch, ok=True)
    recorder = Recorder(codes=[1, 1])
    with pytest.raises(DeployError, match="failed"):
        run_deploy(DeployPlan(context=dict(PINNED)), dry_run=False, session_factory=lambda: object(),
                   run=recorder.run, smoke=recorder.smoke, say=lambda _: None)
    assert recorder.smoked == []


def test_context_pairs_are_parsed_and_validated() -> None:
    assert parse_context(["apiAuth=iam", "alarmEmail=a=b@example.com"]) == {"apiAuth": "iam",
                                                                           "alarmEmail": "a=b@example.com"}
    with pytest.raises(DeployError):
        parse_context(["apiAuth"])
    with pytest.raises(Exception, match="'opensearchVolumeGiB'"):
        DeployPlan(context={"opensearchVolumeGiB": "500"})


def test_dry_run_needs_no_credentials_and_says_what_it_would_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(
        tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-m", "recs.cli", "deploy", "--dry-run", "-c", "apiAuth=iam"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in ("[1/5] preflight", "[2/5] cdk deploy --all", "[3/5] upload", "[4/5] wait", "[5/5] smoke test"):
        assert step in out, out
    assert "would check lambda-concurrency" in out and "apiAuth=iam" in out
    assert "deploy --all --require-approval never" in out
    assert out.rstrip().endswith("dry run complete: nothing was called")
