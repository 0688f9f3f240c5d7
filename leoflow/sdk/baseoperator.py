"""BaseOperator: one task of a DAG, with Airflow's task arguments and default_args merging."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from leoflow.sdk import _context
from leoflow.sdk._errors import caller_location, fail, unsupported
from leoflow.sdk._graph import DependencyMixin
from leoflow.sdk._values import seconds
from leoflow.sdk.trigger_rule import check_trigger_rule
from leoflow.sdk.xcom_arg import XComArg

if TYPE_CHECKING:
    from leoflow.sdk.dag import DAG
    from leoflow.sdk.taskgroup import TaskGroup

_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}$")

# Task arguments that end up in the spec (argument name -> TaskSpec field).
POLICY_FIELDS = {
    "retries": "retries",
    "retry_delay": "retry_delay_seconds",
    "retry_exponential_backoff": "retry_exponential_backoff",
    "max_retry_delay": "max_retry_delay_seconds",
    "execution_timeout": "execution_timeout_seconds",
    "trigger_rule": "trigger_rule",
    "pool": "pool",
    "pool_slots": "pool_slots",
    "priority_weight": "priority_weight",
    "doc_md": "doc_md",
    "doc": "doc_md",
}
POLICY_DEFAULTS: dict[str, Any] = {
    "retries": 0,
    "retry_delay_seconds": 300.0,
    "retry_exponential_backoff": False,
    "max_retry_delay_seconds": None,
    "execution_timeout_seconds": None,
    "trigger_rule": "all_success",
    "pool": "default_pool",
    "pool_slots": 1,
    "priority_weight": 1,
    "doc_md": None,
}
# Airflow BaseOperator arguments accepted for compatibility and not (yet) used by Leoflow.
IGNORED_ARGS = frozenset(
    {
        "owner", "email", "email_on_retry", "email_on_failure", "depends_on_past",
        "ignore_first_depends_on_past", "wait_for_past_depends_before_skipping",
        "wait_for_downstream", "start_date", "end_date", "queue", "sla", "weight_rule",
        "max_active_tis_per_dag", "max_active_tis_per_dagrun", "run_as_user", "executor",
        "executor_config", "do_xcom_push", "inlets", "outlets", "on_execute_callback",
        "on_failure_callback", "on_success_callback", "on_retry_callback",
        "on_skipped_callback", "pre_execute", "post_execute", "task_display_name",
        "doc_rst", "doc_json", "doc_yaml", "map_index_template", "params", "resources",
        "task_concurrency", "logger_name", "allow_nested_operators", "multiple_outputs",
        "show_return_value_in_logs", "templates_dict", "templates_exts", "provide_context",
        "append_env", "cwd", "output_encoding", "skip_on_exit_code", "skip_exit_code",
    }
)  # fmt: skip


def _policy_value(field: str, value: Any, arg: str) -> Any:
    if field in ("retry_delay_seconds",):
        return seconds(value, arg, allow_none=False)
    if field in ("max_retry_delay_seconds", "execution_timeout_seconds"):
        return seconds(value, arg)
    if field == "trigger_rule":
        return check_trigger_rule(value)
    if field in ("retries", "pool_slots", "priority_weight"):
        if value is None and field == "retries":
            return 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(f"{arg} must be an integer, not {value!r}")
        if field == "retries" and value < 0:
            raise fail(f"retries must be >= 0, not {value}")
        return value
    if field == "retry_exponential_backoff":
        return bool(value)
    if field == "pool":
        return "default_pool" if value is None else str(value)
    return value


def resolve_policy(
    explicit: dict[str, Any], default_args: dict[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """Merge default_args under explicit task arguments; return (fields, explicit field names)."""
    fields = dict(POLICY_DEFAULTS)
    for arg, value in default_args.items():
        if arg in POLICY_FIELDS:
            fields[POLICY_FIELDS[arg]] = _policy_value(POLICY_FIELDS[arg], value, arg)
    explicit_fields = set()
    for arg, value in explicit.items():
        field = POLICY_FIELDS[arg]
        fields[field] = _policy_value(field, value, arg)
        explicit_fields.add(field)
    return fields, explicit_fields


class _ExecuteCaller:
    """``python_callable`` of a custom operator: called with the context as keywords."""

    def __init__(self, operator: BaseOperator) -> None:
        self.operator = operator

    def __call__(self, **context: Any) -> Any:
        return self.operator.execute(context)


class BaseOperator(DependencyMixin):
    """A task: its id, DAG, group, retry policy, trigger rule and dependencies."""

    task_type = "empty"
    operator_name: str | None = None
    python_callable: Any = None
    multiple_outputs = False
    _unique_id = False  # TaskFlow tasks get m__1, m__2...; classic duplicates are an error.

    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None = None,
        task_group: TaskGroup | None = None,
        default_args: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.path, self.line = caller_location(in_dag_file=True)
        dag = dag or _context.current_dag()
        if dag is None:
            raise fail(
                f"task {task_id!r} is created outside a DAG",
                hint="create it inside `with DAG(...)` or an @dag function, or pass dag=",
            )
        self.dag = dag
        group = task_group or _context.current_group(dag)
        self.task_group = group
        explicit = {k: kwargs.pop(k) for k in list(kwargs) if k in POLICY_FIELDS}
        unknown = sorted(set(kwargs) - IGNORED_ARGS)
        if unknown:
            raise fail(
                f"{type(self).__name__} got unexpected argument(s): {', '.join(unknown)}",
                hint="check the spelling; see the Airflow operator's documentation",
            )
        merged_defaults = dict(dag.default_args)
        if group is not None:
            merged_defaults.update(group.all_default_args())
        merged_defaults.update(default_args or {})
        self.policy, self.explicit = resolve_policy(explicit, merged_defaults)
        self.env = self._check_env(env if env is not None else merged_defaults.get("env"))
        if env is not None:
            self.explicit.add("env")
        if not isinstance(task_id, str) or not task_id:
            raise fail(f"task_id must be a non-empty string, not {task_id!r}")
        full_id = group.child_id(task_id) if group is not None else task_id
        if self._unique_id:
            full_id = dag.unique_task_id(full_id)
        if not _ID_RE.match(full_id):
            raise fail(
                f"invalid task_id {full_id!r}",
                hint="use letters, digits, '_', '.' or '-' (at most 250 characters)",
            )
        self.task_id = full_id
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self.call_args: dict[str, Any] = {}
        self.xcom_inputs: dict[str, dict[str, str]] = {}
        self.fan_ins: dict[str, dict[str, Any]] = {}
        dag.add_task(self)
        if group is not None:
            group.add(self)
        if type(self).execute is not BaseOperator.execute:
            # A user's own operator: it runs as a python task that calls execute(context).
            self.task_type = "python"
            self.python_callable = _ExecuteCaller(self)

    def execute(self, context: dict[str, Any]) -> Any:
        """Custom operators override this; Leoflow's own operators are run by the worker."""
        raise NotImplementedError(f"{type(self).__name__} does not define execute()")

    @staticmethod
    def _check_env(env: Any) -> dict[str, str]:
        if env is None:
            return {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise fail(f"env must be a dict of strings, not {env!r}")
        return dict(env)

    # -- dependencies ----------------------------------------------------------------------

    @property
    def roots(self) -> list[BaseOperator]:
        return [self]

    @property
    def leaves(self) -> list[BaseOperator]:
        return [self]

    def _add_upstream(self, other: BaseOperator) -> None:
        if other.dag is not self.dag:
            raise fail(
                f"cannot link task {other.task_id!r} of DAG {other.dag.dag_id!r} to task "
                f"{self.task_id!r} of DAG {self.dag.dag_id!r}"
            )
        if other is self:
            raise fail(f"task {self.task_id!r} cannot depend on itself")
        self.upstream_task_ids.add(other.task_id)
        other.downstream_task_ids.add(self.task_id)

    def _read_inputs(self, sources: list[XComArg]) -> None:
        for src in sources:
            self._add_upstream(src.operator)

    @property
    def output(self) -> XComArg:
        """This task's return value as an XComArg."""
        return XComArg(self)

    # -- unsupported Airflow features ------------------------------------------------------

    @classmethod
    def partial(cls, *args: Any, **kwargs: Any) -> Any:
        raise unsupported(
            "dynamic task mapping (.partial/.expand)",
            hint="use a list comprehension: [op(task_id=f'x_{i}', ...) for i in items]",
        )

    def expand(self, *args: Any, **kwargs: Any) -> Any:
        raise unsupported(
            "dynamic task mapping (.expand)",
            hint="use a list comprehension: [op(task_id=f'x_{i}', ...) for i in items]",
        )

    # -- serialization hooks ---------------------------------------------------------------

    @property
    def group_id(self) -> str | None:
        """The full id of this task's innermost TaskGroup, or None."""
        return self.task_group.group_id if self.task_group is not None else None

    def spec_fields(self) -> dict[str, Any]:
        """The type-specific TaskSpec fields (type, operator, callable, bash_command, http)."""
        ref = None
        if isinstance(self.python_callable, _ExecuteCaller):
            ref = f"{type(self).__module__}:{type(self).__qualname__}.execute"
        return {
            "type": self.task_type,
            "operator": self.operator_name or type(self).__name__,
            "callable": ref,
            "bash_command": None,
            "http": None,
        }

    def __repr__(self) -> str:
        return f"<Task({type(self).__name__}): {getattr(self, 'task_id', '?')}>"
