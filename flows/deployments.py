"""Set a Prefect server up for isobench from ``deploy/prefect.yaml``: the work pools its
deployments name, one global concurrency limit per GPU of each GPU host, the automation that
marks runs of dead workers Crashed, and the deployments themselves (through ``prefect
deploy``, so the file means what Prefect's docs say it means).

Also the deployments' pull step: every flow run starts in the worker host's ``ISOBENCH_HOME``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, get_current_settings
from prefect.workers.process import ProcessWorker

from isobench.flows.pipeline import ensure_gpu_limits, gpu_limit_name

HOME_VARIABLE = "ISOBENCH_HOME"
DEPLOY_TIMEOUT_S = 600


class DeployError(Exception):
    """The set-up cannot go on; the message says what to fix."""


@dataclass
class DeployReport:
    pools_created: list[str] = field(default_factory=list)
    pools_found: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)
    automations: list[str] = field(default_factory=list)


def api_url() -> str:
    """The Prefect server to set up. Without one, Prefect would start a throw-away server and
    the deployments would vanish with it."""
    url = PREFECT_API_URL.value()
    if not url:
        raise DeployError(
            "PREFECT_API_URL is not set: point it at the Prefect server, e.g. "
            "http://127.0.0.1:4200/api (see deploy/README.md)"
        )
    return str(url)


def read_prefect_file(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DeployError(f"{path}: cannot read: {exc}") from exc
    deployments = config.get("deployments") if isinstance(config, dict) else None
    if not isinstance(deployments, list) or not deployments:
        raise DeployError(f"{path}: no 'deployments' list")
    for index, item in enumerate(deployments):
        for key in ("name", "entrypoint"):
            if not isinstance(item, dict) or not item.get(key):
                raise DeployError(f"{path}: deployments[{index}]: '{key}' is missing")
        if not (item.get("work_pool") or {}).get("name"):
            raise DeployError(f"{path}: deployment {item['name']!r}: 'work_pool.name' is missing")
    return config


def pool_names(config: dict[str, Any]) -> list[str]:
    return sorted({d["work_pool"]["name"] for d in config["deployments"]})


def deployment_names(config: dict[str, Any]) -> list[str]:
    return [d["name"] for d in config["deployments"]]


def ensure_process_pools(names: list[str], report: DeployReport) -> None:
    """Process pools: the worker on the GPU host runs each flow run as a subprocess with the
    host's own isobench install, Docker engine and GPUs."""
    template = ProcessWorker.get_default_base_job_template()
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                pool = client.read_work_pool(name)
            except ObjectNotFound:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=name,
                        type=ProcessWorker.type,
                        base_job_template=template,
                        description="isobench GPU host(s): a process worker per host",
                    )
                )
                report.pools_created.append(name)
                continue
            if pool.type != ProcessWorker.type:
                raise DeployError(
                    f"work pool {name!r} exists with type {pool.type!r}; isobench needs a "
                    f"{ProcessWorker.type!r} pool (delete it or name another in the file)"
                )
            report.pools_found.append(name)


ZOMBIE_AUTOMATION = "isobench: crash flow runs whose heartbeats stopped"
# Missed heartbeats before a run counts as dead (its host rebooted, its worker was killed).
MISSED_HEARTBEATS = 3


def zombie_automation(heartbeat_s: int) -> AutomationCore:
    """A self-hosted server has no zombie detection of its own: a flow run whose worker died
    would stay Running, its GPU arms unfinished, with nobody told. This marks it Crashed
    (Prefect's own recipe), so it shows as such and can be retried."""
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=f"No heartbeat for {MISSED_HEARTBEATS} x {heartbeat_s} s: mark the run Crashed",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=MISSED_HEARTBEATS * heartbeat_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"isobench: no heartbeat for {MISSED_HEARTBEATS * heartbeat_s} s; "
                "the worker or its host died",
            )
        ],
    )


def ensure_zombie_automation(report: DeployReport) -> None:
    heartbeat_s = get_current_settings().flows.heartbeat_frequency
    if heartbeat_s is None:
        raise DeployError(
            "flow run heartbeats are off (PREFECT_FLOWS_HEARTBEAT_FREQUENCY): without them a "
            "dead worker's runs stay Running; set it (e.g. 180) here and on the workers"
        )
    with get_client(sync_client=True) as client:
        if not client.read_automations_by_name(ZOMBIE_AUTOMATION):
            client.create_automation(zombie_automation(heartbeat_s))
    report.automations.append(ZOMBIE_AUTOMATION)


def run_prefect_deploy(path: Path, url: str) -> None:
    """``prefect --no-prompt deploy --all``: every deployment of the file, as Prefect reads it."""
    command = [
        sys.executable,
        "-m",
        "prefect",
        "--no-prompt",
        "deploy",
        "--all",
        "--prefect-file",
        str(path.resolve()),
    ]
    done = subprocess.run(
        command,
        cwd=path.resolve().parent,
        capture_output=True,
        text=True,
        timeout=DEPLOY_TIMEOUT_S,
        check=False,
        env={**os.environ, "PREFECT_API_URL": url},
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise DeployError(f"prefect deploy failed (exit {done.returncode}):\n{output[-4000:]}")


def set_up(path: Path, *, host: str | None, gpus: list[str]) -> DeployReport:
    """Pools, GPU limits and deployments, in that order (a deployment needs its pool).
    Running it again changes nothing that is already right."""
    url = api_url()
    config = read_prefect_file(path)
    report = DeployReport()
    try:
        ensure_process_pools(pool_names(config), report)
        ensure_gpu_limits(gpus, host=host)
        ensure_zombie_automation(report)
    except httpx.HTTPError as exc:
        raise DeployError(f"the Prefect server at {url} did not answer: {exc}") from exc
    report.limits = [gpu_limit_name(g, host=host) for g in gpus]
    run_prefect_deploy(path, url)
    report.deployments = deployment_names(config)
    return report


def enter_home() -> dict[str, str]:
    """The deployments' pull step: run in the worker host's ISOBENCH_HOME, where its .env,
    its SQLite file (if any) and its work folders live."""
    home = os.environ.get(HOME_VARIABLE)
    if not home:
        raise DeployError(
            f"{HOME_VARIABLE} is not set on this worker: set it to isobench's folder on the host "
            "(it holds .env, the work folders and an SQLite file if one is used)"
        )
    directory = Path(home)
    if not directory.is_dir():
        raise DeployError(f"{HOME_VARIABLE}={home} is not a folder on this worker")
    os.chdir(directory)
    return {"directory": str(directory)}
