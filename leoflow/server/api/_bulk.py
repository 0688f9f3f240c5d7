"""Airflow's bulk body (``{"actions": [...]}``) parsed into the store's ``BulkAction`` list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from leoflow.store.api import BulkAction, BulkResult

B = TypeVar("B", bound=BaseModel)
E = TypeVar("E")


class BulkCreateAction(BaseModel, Generic[B]):
    """BulkCreateAction[T]."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["create"]
    entities: list[B]
    action_on_existence: Literal["fail", "skip", "overwrite"] = "fail"


class BulkUpdateAction(BaseModel, Generic[B]):
    """BulkUpdateAction[T]."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["update"]
    entities: list[B]
    action_on_non_existence: Literal["fail", "skip"] = "fail"
    update_mask: list[str] | None = None


class BulkDeleteAction(BaseModel, Generic[B]):
    """BulkDeleteAction[T]: entities are keys or bodies."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["delete"]
    entities: list[str | B]
    action_on_non_existence: Literal["fail", "skip"] = "fail"


def bulk_body_model(entity: type[B]) -> type[BaseModel]:
    """The BulkBody[entity] model."""
    action = Annotated[
        BulkCreateAction[entity] | BulkUpdateAction[entity] | BulkDeleteAction[entity],  # type: ignore[valid-type]
        Field(discriminator="action"),
    ]

    class BulkBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        actions: list[action]  # type: ignore[valid-type]

    BulkBody.__name__ = f"BulkBody_{entity.__name__}_"
    return BulkBody


def to_actions(
    body: Any, convert: Callable[[Any], E], key_of: Callable[[Any], str]
) -> list[BulkAction[E]]:
    """Store actions from a validated bulk body (delete entities become keys)."""
    actions: list[BulkAction[E]] = []
    for item in body.actions:
        if item.action == "delete":
            keys = [e if isinstance(e, str) else key_of(e) for e in item.entities]
            actions.append(
                BulkAction("delete", keys, action_on_non_existence=item.action_on_non_existence)
            )
        elif item.action == "create":
            entities = [convert(e) for e in item.entities]
            actions.append(
                BulkAction("create", entities, action_on_existence=item.action_on_existence)
            )
        else:
            entities = [convert(e) for e in item.entities]
            actions.append(
                BulkAction("update", entities, action_on_non_existence=item.action_on_non_existence)
            )
    return actions


def bulk_response(result: BulkResult) -> dict[str, Any]:
    """BulkResponse."""

    def one(part: Any) -> dict[str, Any] | None:
        return (
            None if part is None else {"success": list(part.success), "errors": list(part.errors)}
        )

    return {
        "create": one(result.create),
        "update": one(result.update),
        "delete": one(result.delete),
    }
