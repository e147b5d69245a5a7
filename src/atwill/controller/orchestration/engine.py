"""The engine: walks a stack's dependency graph, a few resources at a time, as its owner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp

from ...core.errors import ApiError
from ...core.hot import graph
from ..context import Controller
from . import store
from .scope import StackState
from .services import Api, ResourceFailure, mint_token
from .types.base import Made, Scope

log = logging.getLogger("atwill.orchestration")

# Resources acted on at once per stack, and how often a pending one is looked at: soon at
# first (most finish within a few calls), then less often (servers take seconds).
CONCURRENCY = 4
POLL_FIRST, POLL_MAX = 0.05, 1.0
# Heat's stack_action_timeout, used when a stack gives no timeout_mins.
DEFAULT_TIMEOUT_MINS = 60
TIMED_OUT = "Timed out"


class StepFailed(Exception):
    """A resource failed; the message is Heat's "Type: resources.name: why"."""


class Aborted(Exception):
    """The stack was asked to stop (deleted while being built)."""


class Engine:
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.app: ASGIApp | None = None  # the controller's whole app, set when mounted
        self.tasks: dict[str, set[asyncio.Task]] = {}
        self.aborting: set[str] = set()
        # Stacks whose current action a user cancelled: with rollback (True) or without.
        self.cancelled: dict[str, bool] = {}
        # Seconds in one of timeout_mins' minutes (unit tests shorten it).
        self.minute = 60.0

    async def db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, self.ctl, *args, **kw)

    def launch(self, stack_id: str, work: Callable[[str], Awaitable[None]]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(stack_id, work))
        self.tasks.setdefault(stack_id, set()).add(task)

    async def _guarded(self, stack_id: str, work: Callable[[str], Awaitable[None]]) -> None:
        try:
            await work(stack_id)
        except Exception:
            log.exception("stack %s: the engine failed", stack_id)
        finally:
            running = self.tasks.get(stack_id, set())
            running.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not running:
                self.tasks.pop(stack_id, None)

    async def stop(self, stack_id: str) -> None:
        """Let a running action end at its next step, and wait for it."""
        others = self.tasks.get(stack_id, set()) - {asyncio.current_task()}
        if not others:
            return
        self.aborting.add(stack_id)
        try:
            await asyncio.wait(others)
        finally:
            self.aborting.discard(stack_id)

    def cancel(self, stack_id: str, rollback: bool) -> None:
        """Stop starting resources and abort waiting ones; the action then fails."""
        self.cancelled[stack_id] = rollback
        self.aborting.add(stack_id)

    def settle_cancel(self, stack_id: str) -> bool | None:
        """Whether the action just ended was cancelled (with rollback), and forget it."""
        if stack_id not in self.cancelled:
            return None
        self.aborting.discard(stack_id)
        return self.cancelled.pop(stack_id)

    def start_clock(self, state: StackState) -> None:
        mins = state.timeout_mins if state.timeout_mins else DEFAULT_TIMEOUT_MINS
        state.deadline = asyncio.get_running_loop().time() + mins * self.minute

    def scope(self, state: StackState, name: str) -> Scope:
        async def adopt(child_id: str) -> None:
            await self.db(store.adopt, child_id, state.id)

        return Scope(state.name, state.id, name, state.configs, state.project_id,
                     state.files, adopt)

    async def api_for(self, state: StackState) -> Api:
        def mint(ctl: Controller) -> str:
            with ctl.db.session() as session:
                return mint_token(ctl, session, state.user_id, state.project_id)

        token = await self.db(mint)
        assert self.app is not None, "the engine runs inside the controller's app"
        return Api(self.app, self.ctl.base_url, token)

    # Actions on whole stacks.
    async def create(self, stack_id: str) -> None:
        state, _props = await self.db(store.load, stack_id)
        api = await self.api_for(state)
        try:
            self.start_clock(state)
            failure = await self.walk(state, api, state.active(), self.create_one)
            cancelled = self.settle_cancel(stack_id)
            if failure is None:
                await self.db(store.set_stack, stack_id, "CREATE", "COMPLETE",
                              "Stack CREATE completed successfully")
                return
            reason = failed_reason("CREATE", failure, cancelled)
            await self.db(store.set_stack, stack_id, "CREATE", "FAILED", reason)
            if stack_id in self.aborting:
                return  # deleted while being made: the delete removes what was made
            if cancelled or (cancelled is None and not state.disable_rollback):
                await self.rollback(state, api, reason)
        finally:
            await api.close()

    async def rollback(self, state: StackState, api: Api, reason: str) -> None:
        await self.db(store.set_stack, state.id, "ROLLBACK", "IN_PROGRESS", reason)
        failed = await self.remove(state, api, "ROLLBACK")
        if failed:
            await self.db(store.set_stack, state.id, "ROLLBACK", "FAILED",
                          f"Resource DELETE failed: {failed}")
            return
        await self.db(store.drop_resources, state.id, list(state.tmpl.resources))
        await self.db(store.set_stack, state.id, "ROLLBACK", "COMPLETE",
                      "Stack ROLLBACK completed successfully")

    async def delete(self, stack_id: str) -> None:
        await self.stop(stack_id)
        state, _props = await self.db(store.load, stack_id)
        api = await self.api_for(state)
        try:
            failed = await self.remove(state, api, "DELETE")
        finally:
            await api.close()
        if failed:
            await self.db(store.set_stack, stack_id, "DELETE", "FAILED",
                          f"Resource DELETE failed: {failed}")
            return
        await self.db(store.drop_stack, stack_id)

    async def remove(self, state: StackState, api: Api, action: str) -> str | None:
        """Delete every made resource, dependants first; the first failure, if any."""
        state.deadline = None  # a delete or rollback is not bound by the action's timeout
        present = set(state.made)
        deps = graph.reverse(graph.dependencies(state.tmpl, present))

        async def one(name: str) -> None:
            await self.delete_one(state, api, name, action)

        return await self.walk(state, api, sorted(present), None, deps, one)

    async def walk(self, state: StackState, api: Api, names: list[str],
                   step: Callable[..., Awaitable[None]] | None,
                   deps: dict[str, set[str]] | None = None,
                   one: Callable[[str], Awaitable[None]] | None = None) -> str | None:
        """Run a step for each name once what it needs is done; stop starting on failure."""
        deps = deps if deps is not None else graph.dependencies(state.tmpl, set(names))
        run = one or (lambda name: step(state, api, name))  # type: ignore[misc]
        pending, done, running = list(names), set(), {}
        failure: str | None = None
        gate = asyncio.Semaphore(CONCURRENCY)

        async def gated(name: str) -> None:
            async with gate:
                await run(name)

        while True:
            if failure is None and state.id not in self.aborting:
                for name in [n for n in pending if deps.get(n, set()) <= done]:
                    pending.remove(name)
                    running[asyncio.ensure_future(gated(name))] = name
            if not running:
                return failure if failure or not pending else "Aborted: stopped"
            left = None if state.deadline is None else (
                state.deadline - asyncio.get_running_loop().time())
            finished, _ = await asyncio.wait(running, timeout=left,
                                             return_when=asyncio.FIRST_COMPLETED)
            if not finished:
                await self.time_out(state, running)
                return TIMED_OUT
            for task in finished:
                name = running.pop(task)
                err = task.exception()
                if err is None:
                    done.add(name)
                elif failure is None:
                    failure = str(err) if isinstance(err, StepFailed | Aborted) else (
                        f"{type(err).__name__}: resources.{name}: {err}")

    async def time_out(self, state: StackState, running: dict[asyncio.Future, str]) -> None:
        """Stop what is still running and mark it failed, as Heat on a stack timeout."""
        for task in running:
            task.cancel()
        await asyncio.wait(running)
        for name in running.values():
            await self.db(store.fail_in_progress, state.id, name, "Timed out")

    # Actions on single resources.
    async def create_one(self, state: StackState, api: Api, name: str) -> None:
        rtype = state.type_of(name)
        await self.db(store.set_resource, state.id, name, "CREATE", "IN_PROGRESS",
                      "state changed")
        scope = self.scope(state, name)
        props: dict[str, Any] = {}
        try:
            props = rtype.with_defaults(state.evaluate(state.tmpl.resources[name].properties))
            rtype.check(name, props)
            made = await rtype.create(api, props, scope)
            state.made[name] = made
            await self.db(store.set_resource, state.id, name, "CREATE", "IN_PROGRESS",
                          "state changed", made=made, properties=props)
            await self.until(state, lambda: rtype.ready(api, made))
        except (ResourceFailure, ApiError, Aborted) as err:
            await self.fail(state, name, "CREATE", err, state.made.get(name), props)
        await self.db(store.set_resource, state.id, name, "CREATE", "COMPLETE",
                      "state changed", made=state.made[name], properties=props)

    async def delete_one(self, state: StackState, api: Api, name: str, action: str) -> None:
        made = state.made[name]
        rtype = state.type_of(name)
        await self.db(store.set_resource, state.id, name, "DELETE", "IN_PROGRESS",
                      "state changed")
        try:
            await rtype.delete(api, made)
            await self.until(state, lambda: rtype.deleted(api, made), abortable=False)
        except (ResourceFailure, ApiError) as err:
            await self.fail(state, name, "DELETE", err, made, None)
        del state.made[name]
        await self.db(store.set_resource, state.id, name, "DELETE", "COMPLETE",
                      "state changed")

    async def until(self, state: StackState, ready: Callable[[], Awaitable[bool]],
                    abortable: bool = True) -> None:
        pause = POLL_FIRST
        while not await ready():
            if abortable and state.id in self.aborting:
                raise Aborted("Operation cancelled")
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_MAX)

    async def fail(self, state: StackState, name: str, action: str, err: Exception,
                   made: Made | None, props: dict[str, Any] | None) -> None:
        kind = getattr(err, "kind", None) or getattr(err, "heat_type", None) or (
            type(err).__name__)
        message = getattr(err, "message", str(err))
        reason = f"{kind}: resources.{name}: {message}"
        await self.db(store.set_resource, state.id, name, action, "FAILED", reason,
                      made=made, properties=props)
        raise StepFailed(reason)


def failed_reason(action: str, failure: str, cancelled: bool | None) -> str:
    """Heat's stack_status_reason for a failed action."""
    if failure == TIMED_OUT:
        return f"{action.title()} timed out"
    if cancelled is not None:
        return f"Stack {action} cancelled"
    return f"Resource {action} failed: {failure}"
