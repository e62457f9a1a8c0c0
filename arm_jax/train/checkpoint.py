"""Checkpoints: one orbax CheckpointManager step holds the train state, the data position and meta.

Layout of a step directory: `state` (params, opt_state, step, rng: a plain dict), `data` (the
grain iterator state, so a resumed run sees exactly the batches it would have seen), `meta`
(JSON: stage name, config), `checksums` (JSON: a fingerprint of every array of `state`, CRCs of
the data position and of meta, see checksum.py; in the same atomic step as what it covers).

Saves are async and atomic (orbax writes a temporary directory and renames it), so a crash
mid-save leaves the previous step intact. Each save attempt writes under its own temporary name,
so retrying a step after a failed save in the same process never meets the failed attempt's
late writes. A failed write (disk full, ...) is a one-line CheckpointError naming the step that
failed, also when an async save reports it only at the next save or at close().

Resume order: newest step first; a step that cannot be read, or whose restored values do not
match its checksums (a flipped byte in a data file), is moved aside to `<dir>.corrupt/` with a
one-line warning and the next older one is tried; if none can be read the run stops with a
one-line error instead of starting over. Steps written before checksums existed are restored
unchecked.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil

import grain
import jax
from etils import epath
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp
from orbax.checkpoint.path import atomicity

from arm_jax.errors import UserError
from arm_jax.train import checksum

log = logging.getLogger(__name__)


class CheckpointError(UserError):
  """A checkpoint could not be saved or restored."""


class ChecksumMismatch(Exception):
  """Restored values differ from the checksums saved with them."""


class _AttemptTemporaryPath(atomicity.AtomicRenameTemporaryPath):
  """Orbax's atomic rename, with `<step>.orbax-checkpoint-tmp-<n>` for the n-th attempt at a step.

  Orbax names every attempt `<step>.orbax-checkpoint-tmp`. After a failed save, writes of that
  attempt may still be landing (orbax reports the first failure without joining the rest) and
  recreate directories under the name a retry is using ("File exists"). Attempts count per path
  and process, so all processes of a multi-host save agree on the name; a new process starts at
  0 again, where orbax replaces an unfinished directory of a run that is gone.
  """
  _attempts: collections.Counter = collections.Counter()

  @classmethod
  def from_final(cls, final_path, **kwargs):
    if atomicity.TMP_DIR_SUFFIX in final_path.parent.name:   # an item inside a step: unique already
      return super().from_final(final_path, **kwargs)
    n = cls._attempts[str(final_path)]
    cls._attempts[str(final_path)] += 1
    tmp = final_path.parent / f"{final_path.name}{atomicity.TMP_DIR_SUFFIX}-{n}"
    return cls(tmp, final_path, **kwargs)


class Checkpoints:
  """Save/restore {state, data, meta, checksums} under `directory` (keeps the newest `keep`)."""

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    # No cleanup_tmp_directories: late writes of a failed attempt in this process may still be
    # landing in its temporary directory. A later process's first attempt at that step replaces it.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=async_save, create=True,
        temporary_path_class=_AttemptTemporaryPath)
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler(),
                       "checksums": ocp.JsonCheckpointHandler()})
    self._unconfirmed: list[int] = []
    self._failed: CheckpointError | None = None

  # --- saving ----------------------------------------------------------------------------------
  def save(self, step: int, state, data_iter=None, meta: dict | None = None,
           force: bool = False) -> None:
    meta = meta or {}
    sums = {"state": checksum.fingerprint(state), "meta": checksum.json_digest(meta)}
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
      sums["data"] = checksum.json_digest(data_iter.get_state())
    items["checksums"] = ocp.args.JsonSave(sums)
    # An async save reports its write errors only later (at the next save or wait): keep the
    # steps that may still be in flight so the error names the one that failed.
    self._unconfirmed.append(step)
    try:
      self.manager.save(step, args=ocp.args.Composite(**items), force=force)
    except Exception as e:
      error = self._save_error(e)
      if error is None:
        raise
      raise error from e
    self._unconfirmed = [step]   # orbax finished every earlier save before starting this one

  def wait(self) -> None:
    """Blocks until async saves are on disk (call before exiting)."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      error = self._save_error(e)
      if error is None:
        raise
      raise error from e
    self._unconfirmed = []

  def _save_error(self, e: Exception) -> CheckpointError | None:
    """A write failure -> one CheckpointError (the same one each time orbax re-raises it)."""
    code = _io_errno(e)
    if code is None:   # not a write failure: a bug, keep its traceback
      return None
    if self._failed is None:
      with contextlib.suppress(Exception):
        self.manager.reload()
      done = set(self.manager.all_steps())
      pending = [s for s in self._unconfirmed if s not in done]
      step = min(pending) if pending else self.manager.latest_step()
      kept = f"the checkpoint at step {max(done)} is intact" if done else "no earlier checkpoint"
      reason = "disk full" if code == errno.ENOSPC else (os.strerror(code) if code else "")
      reason = reason or (str(e).splitlines() or [type(e).__name__])[0][:300]
      self._failed = CheckpointError(
          f"saving checkpoint step {step} in {self.directory} failed ({reason}); {kept}; "
          f"free space or fix the path and rerun to resume")
    return self._failed

  def close(self) -> None:
    try:
      self.wait()
    finally:
      try:
        self.manager.close()
      except Exception as e:
        # After a failed save orbax re-raises the write error on close; it was reported.
        if self._failed is None or _io_errno(e) is None:
          raise

  # --- restoring -------------------------------------------------------------------------------
  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore(self, abstract_state, data_iter=None):
    """Newest readable step -> (state, step, meta); (None, 0, {}) when there is none."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    failures = []
    for step in steps:
      self._check_shapes(step, abstract_state)
      try:
        out = self._restore_checked(step, abstract_state, data_iter)
      except Exception as e:  # orbax/tensorstore raise many types for unreadable files
        failures.append(f"step {step}: {type(e).__name__}")
        self._quarantine(step, e)
        continue
      if failures:
        log.warning("resumed from step %d after skipping unreadable checkpoints (%s)", step,
                    "; ".join(failures))
      return out["state"], step, dict(out["meta"] or {})
    if failures:
      raise CheckpointError(
          f"no checkpoint in {self.directory} could be read ({'; '.join(failures)}); they were "
          f"moved to {self.directory}.corrupt/; delete that folder to start over or restore a "
          f"backup")
    return None, 0, {}

  def _restore_checked(self, step: int, abstract_state, data_iter) -> dict:
    """Restores `step`; raises ChecksumMismatch if its values are not those saved."""
    items = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    checked = (epath.Path(self.directory) / str(step) / "checksums").exists()
    if checked:
      items["checksums"] = ocp.args.JsonRestore()
    out = self.manager.restore(step, args=ocp.args.Composite(**items))
    if not checked:
      return out
    sums = out["checksums"]
    bad = checksum.mismatches(sums["state"], checksum.fingerprint(out["state"]))
    if bad:
      more = f" and {len(bad) - 1} more arrays differ" if len(bad) > 1 else " differs"
      raise ChecksumMismatch(f"{bad[0]}{more} from the checksums saved with them")
    if data_iter is not None and sums.get("data") != checksum.json_digest(data_iter.get_state()):
      raise ChecksumMismatch("the data position differs from the checksum saved with it")
    if sums.get("meta") != checksum.json_digest(out["meta"] or {}):
      raise ChecksumMismatch("meta differs from the checksum saved with it")
    return out

  def _check_shapes(self, step: int, abstract_state) -> None:
    """A config/checkpoint mismatch is the user's error, not corruption: say so, move nothing."""
    try:
      saved = self.manager.item_metadata(step)["state"]
    except Exception:  # unreadable metadata: let the restore attempt classify it
      return
    if saved is None:
      return
    flat_saved = dict(jax.tree_util.tree_flatten_with_path(saved)[0])
    for path, want in jax.tree_util.tree_flatten_with_path(abstract_state)[0]:
      got = flat_saved.get(path)
      if got is not None and hasattr(got, "shape") and tuple(got.shape) != tuple(want.shape):
        name = jax.tree_util.keystr(path)
        raise CheckpointError(
            f"checkpoint step {step} in {self.directory} has {name} of shape "
            f"{tuple(got.shape)} but this config builds {tuple(want.shape)}; use the config it "
            f"was trained with or a new --workdir")

  def _quarantine(self, step: int, error: Exception) -> None:
    src = os.path.join(self.directory, str(step))
    dst_root = self.directory + ".corrupt"
    os.makedirs(dst_root, exist_ok=True)
    dst = os.path.join(dst_root, str(step))
    n = 0
    while os.path.exists(dst):
      n += 1
      dst = os.path.join(dst_root, f"{step}.{n}")
    what = "failed its checksum" if isinstance(error, ChecksumMismatch) else "is unreadable"
    log.warning("checkpoint step %d %s (%s: %s); moved to %s", step, what,
                type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "",
                dst)
    # Several processes share the directory: one moves, all wait for it before rereading.
    if jax.process_index() == 0 and os.path.exists(src):
      shutil.move(src, dst)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"arm_jax_quarantine_{step}")
    self.manager.reload()


def _io_errno(e: BaseException) -> int | None:
  """The errno of a failed write, or None if `e` is not one.

  Python-side writes raise OSError; tensorstore (the array data) raises ValueError with the
  OS error in its message, e.g. "No space left on device [os_error_code='28']". Only explicit
  causes are followed: an error raised while handling a write error is a bug of its own.
  """
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError):
      return e.errno or 0
    found = re.search(r"os_error_code='?(\d+)", str(e))
    if found:
      return int(found.group(1))
    e = e.__cause__
  return None


class WorkdirBusyError(UserError):
  pass


@contextlib.contextmanager
def workdir_lock(workdir: str):
  """Holds an exclusive lock on `workdir` so two runs never write the same checkpoints.

  Local directories only: object-store workdirs (gs://...) are coordinated by the launcher.
  """
  if "://" in workdir:
    yield
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, ".lock")
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      other = os.read(fd, 32).decode(errors="replace").strip() or "?"
      raise WorkdirBusyError(f"another run (pid {other}) is using {workdir}; wait for it to "
                             f"finish or pass a different --workdir") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    yield
  finally:
    os.close(fd)
