"""agent.proto and its committed stubs never drift apart."""

from __future__ import annotations

from pathlib import Path

from leoflow.rpc import agent_pb2, agent_pb2_grpc
from leoflow.rpc.generate import RPC_DIR, generate


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    for fresh in generate(tmp_path):
        committed = RPC_DIR / fresh.name
        assert committed.read_text() == fresh.read_text(), (
            f"{committed.name} is stale: run `python -m leoflow.rpc.generate` and commit"
        )


def test_stubs_expose_the_service() -> None:
    service = agent_pb2.DESCRIPTOR.services_by_name["Agent"]
    assert {m.name for m in service.methods} == {
        "Register",
        "GetTask",
        "GetInputs",
        "GetSecrets",
        "PushXCom",
        "StreamLogs",
        "ReportState",
        "Heartbeat",
    }
    assert hasattr(agent_pb2_grpc, "AgentStub") and hasattr(agent_pb2_grpc, "AgentServicer")
    msg = agent_pb2.PushXComRequest(key="k", value_json=b'{"a": 1}')
    assert agent_pb2.PushXComRequest.FromString(msg.SerializeToString()) == msg
