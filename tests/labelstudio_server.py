"""A real Label Studio server for tests: started on loopback, always stopped.

Label Studio lives in its own virtual environment (label-studio 1.23.2 and
label-studio-sdk 2.1.2 pin numpy < 2.3 through opencv, which would downgrade
jax-al's), made by tests/labelstudio_env.sh. So this module has two halves:

- the harness (standard library only), imported by the tests;
- the annotator (`python labelstudio_server.py COMMAND JSON`), run by Label
  Studio's Python, where `label_studio_sdk` is importable. Each command prints
  one JSON object as its last line.

Facts this relies on (label-studio 1.23.2, checked): `LABEL_STUDIO_USERNAME`,
`LABEL_STUDIO_PASSWORD` and `LABEL_STUDIO_USER_TOKEN` create the first user at
the first `start`; that preset token authenticates (`Authorization: Token`)
only with `LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true`. A busy port makes
`label-studio start` move on to another port, so readiness waits for the log
line naming ours. A first start migrates the SQLite database (about 20 s on
2 cores).

The server runs under a watchdog (its own process group) that holds a pipe
from the test process: when the test process ends in any way, even killed,
the pipe closes and the watchdog stops the server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "JAX_AL_LS_VENV"  # a venv with label-studio and label-studio-sdk
DEFAULT_VENV = REPO / ".ls-venv"
INSTALL_SCRIPT = REPO / "tests" / "labelstudio_env.sh"
INSTALL_LOG = REPO / ".ls-venv.log"

USERNAME = "annotator@example.com"
PASSWORD = "jax-al-test-only"
TOKEN = "jax-al-test-token-0123456789"  # preset legacy token
# Only these variables pass from the test's environment to the server: it
# also reads unprefixed names (HOST, PORT, USERNAME, DEBUG, ...).
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE")

# Run by sys.executable as the process-group leader: starts argv[1:], stops
# it (SIGTERM, then SIGKILL) once its stdin closes, exits with its status.
_WATCHDOG = r"""
import signal, subprocess, sys, threading
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
def watch():
  sys.stdin.buffer.read()  # EOF: the test process closed the pipe or died
  print("watchdog: the test process let go; stopping label-studio", flush=True)
  p.terminate()  # SIGINT is not enough while it serves an export
  try:
    p.wait(timeout=15)
  except subprocess.TimeoutExpired:
    print("watchdog: no exit 15 s after SIGTERM; killing it", flush=True)
    p.kill()
threading.Thread(target=watch, daemon=True).start()
rc = p.wait()
print(f"watchdog: label-studio exited with {rc}", flush=True)
sys.exit(rc)
"""


class ServerError(RuntimeError):
  """The server did not start, or an annotator command failed."""


@dataclass(frozen=True)
class Install:
  """One Label Studio environment."""
  venv: Path

  @property
  def executable(self) -> Path:
    return self.venv / "bin" / "label-studio"

  @property
  def python(self) -> Path:
    return self.venv / "bin" / "python"


def find_install() -> Install | str:
  """The Label Studio venv to use, or why there is none (a skip reason).

  `JAX_AL_LS_VENV` names it, and a set but broken value raises (that one was
  asked for); else `.ls-venv` in the repository, which the install script
  makes.
  """
  named = os.environ.get(ENV_VAR)
  if named:
    install = Install(Path(named))
    for need in (install.executable, install.python):
      if not os.access(need, os.X_OK):
        raise ServerError(f"{ENV_VAR}={named}: no executable {need}; point it at a venv "
                          "with label-studio and label-studio-sdk, or unset it")
    return install
  install = Install(DEFAULT_VENV)
  cut_short = (DEFAULT_VENV / ".jax-al-installing").exists()
  if not cut_short and os.access(install.executable, os.X_OK) and \
      os.access(install.python, os.X_OK):
    return install
  if INSTALL_LOG.is_file():
    lines = [l for l in INSTALL_LOG.read_text(errors="replace").splitlines() if l.strip()]
    errors = [l for l in lines if "error" in l.lower()]
    why = (errors or lines or ["(empty log)"])[-1]
    return f"Label Studio could not be installed, see {INSTALL_LOG}: {why[-300:]}"
  return (f"no Label Studio venv: run bash {INSTALL_SCRIPT.relative_to(REPO)} (as .ci/run "
          f"does) or set {ENV_VAR}")


def free_port() -> int:
  """A loopback port nothing listens on now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def server_env(data_dir: Path, document_root: Path) -> dict[str, str]:
  """The server's whole environment: fixed user, local files, nothing phoned home."""
  env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
  env.update({
      "HOME": str(data_dir / "home"),
      "PYTHONUNBUFFERED": "1",  # the readiness check reads the log as it is written
      "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
      "LABEL_STUDIO_USERNAME": USERNAME,
      "LABEL_STUDIO_PASSWORD": PASSWORD,
      "LABEL_STUDIO_USER_TOKEN": TOKEN,
      "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
      "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
      "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
      "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
      "SENTRY_DSN": "",
      "FRONTEND_SENTRY_DSN": "",
      "LATEST_VERSION_CHECK": "false",
      "COLLECT_ANALYTICS": "false",
  })
  return env


@dataclass
class Server:
  """A running `label-studio start` on 127.0.0.1:port (make it with `start`)."""
  install: Install
  port: int
  data_dir: Path
  document_root: Path
  process: subprocess.Popen  # the watchdog
  log_path: Path
  startup_s: float = 0.0

  @property
  def url(self) -> str:
    return f"http://127.0.0.1:{self.port}"

  @classmethod
  def start(cls, install: Install, data_dir: Path, document_root: Path,
            timeout_s: float = 300.0) -> "Server":
    """Starts a server with a fresh database in `data_dir`; waits until it answers."""
    data_dir, document_root = Path(data_dir).resolve(), Path(document_root).resolve()
    (data_dir / "home").mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir / "server.log"
    cmd = [sys.executable, "-c", _WATCHDOG, str(install.executable), "start",
           "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir)]
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
      process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log,
                                 stderr=subprocess.STDOUT, cwd=data_dir,
                                 env=server_env(data_dir, document_root),
                                 start_new_session=True)
    server = cls(install, port, data_dir, document_root, process, log_path)
    try:
      server._wait_ready(timeout_s)
    except BaseException:
      server.stop()
      raise
    server.startup_s = time.monotonic() - t0
    return server

  def _wait_ready(self, timeout_s: float) -> None:
    banner = f"Starting development server at {self.url}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise ServerError(f"label-studio exited with {self.process.returncode} before it "
                          f"was ready; its log ends:\n{self.log_tail()}")
      if banner in self.log_path.read_text(errors="replace") and self._health_up():
        return
      time.sleep(0.5)
    raise ServerError(f"label-studio not ready at {self.url} after {timeout_s:.0f} s; "
                      f"its log ends:\n{self.log_tail()}")

  def _health_up(self) -> bool:
    try:
      with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
        return r.status == 200 and json.loads(r.read()).get("status") == "UP"
    except (urllib.error.URLError, OSError, ValueError):
      return False

  def log_tail(self, lines: int = 40) -> str:
    if not self.log_path.is_file():
      return "(no log)"
    return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

  def stop(self, timeout_s: float = 40.0) -> None:
    """Closes the watchdog's pipe (it stops the server), SIGKILLs the group if slow."""
    try:
      self.process.stdin.close()
    except OSError:
      pass
    try:
      self.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
      pass
    try:  # whatever is left of the group (the watchdog is its leader)
      os.killpg(self.process.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
    self.process.wait(timeout=timeout_s)

  def __enter__(self) -> "Server":
    return self

  def __exit__(self, *exc) -> None:
    self.stop()

  def get(self, path: str, token: bool = True) -> tuple[int, bytes]:
    """GET `path` (e.g. a task's `/data/local-files/?d=...`), with the token or without."""
    headers = {"Authorization": f"Token {TOKEN}"} if token else {}
    req = urllib.request.Request(self.url + path, headers=headers)
    try:
      with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()
    except urllib.error.HTTPError as e:
      return e.code, e.read()

  def annotator(self, command: str, **args) -> dict:
    """Runs an annotator command (below) through label_studio_sdk in Label Studio's venv."""
    payload = json.dumps({"url": self.url, "token": TOKEN, **args})
    p = subprocess.run([str(self.install.python), __file__, command, payload],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
      raise ServerError(f"annotator {command} failed ({p.returncode}):\n{p.stderr[-3000:]}"
                        f"\nserver log ends:\n{self.log_tail(15)}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# The annotator: run as a script by Label Studio's Python (label_studio_sdk 2.1).

def _client(args):
  from label_studio_sdk import LabelStudio
  # A token that is not a JWT is sent as a legacy `Authorization: Token`.
  return LabelStudio(base_url=args["url"], api_key=args["token"])


def _api_error(e) -> str:
  body = getattr(e, "body", None)
  return json.dumps(body.get("validation_errors") or body) if isinstance(body, dict) else str(e)


def create_project(args) -> dict:
  """A project with `label_config`, and a Local Files storage per folder in `storages`.

  A storage the server refuses is reported in `refused` (folder -> its
  validation errors) rather than raised, so a test can check the refusal.
  """
  from label_studio_sdk.core.api_error import ApiError
  ls = _client(args)
  project = ls.projects.create(title=args["title"], label_config=args["label_config"])
  storages, refused = [], {}
  for path in args["storages"]:
    try:
      storages.append(ls.import_storage.local.create(
          project=project.id, path=path, title=Path(path).name or "root",
          use_blob_urls=True).id)
    except ApiError as e:
      refused[path] = _api_error(e)
  return {"project": project.id, "storages": storages, "refused": refused}


def import_tasks(args) -> dict:
  """Imports the task file's JSON list as it is."""
  ls = _client(args)
  tasks = json.loads(Path(args["tasks_file"]).read_text())
  r = ls.projects.import_tasks(args["project"], request=tasks, return_task_ids=True)
  return {"task_count": r.task_count, "task_ids": list(r.task_ids or [])}


def list_tasks(args) -> dict:
  """The project's tasks as stored: [{"id", "data"}]."""
  ls = _client(args)
  return {"tasks": [{"id": t.id, "data": t.data} for t in ls.tasks.list(project=args["project"])]}


def annotate(args) -> dict:
  """Annotates tasks through the API as the annotator's UI does.

  `labels` maps a task's `data.jax_al_id` to a list of choices, one
  annotation each (a list of two gives two annotations); `cancel` lists ids
  whose task is skipped (a cancelled annotation with no result, the UI's
  Skip). Tasks in neither are left alone.
  """
  ls = _client(args)
  labels, cancel = args["labels"], set(args["cancel"])
  from_name, to_name = args["from_name"], args["to_name"]
  done = {"annotations": 0, "cancelled": 0}
  for task in ls.tasks.list(project=args["project"]):
    item = task.data["jax_al_id"]
    if item in cancel:
      ls.annotations.create(task.id, result=[], was_cancelled=True)
      done["cancelled"] += 1
    for label in labels.get(item, []):
      ls.annotations.create(task.id, was_cancelled=False, result=[{
          "from_name": from_name, "to_name": to_name, "type": "choices",
          "value": {"choices": [label]}}])
      done["annotations"] += 1
  return done


def export(args) -> dict:
  """The project's export in `export_type` (the UI's Export button) to `out`."""
  ls = _client(args)
  body = b"".join(ls.projects.exports.download_sync(args["project"],
                                                    export_type=args["export_type"]))
  Path(args["out"]).write_bytes(body)
  return {"bytes": len(body)}


COMMANDS = {f.__name__: f for f in (create_project, import_tasks, list_tasks, annotate,
                                    export)}

if __name__ == "__main__":
  print(json.dumps(COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))))
