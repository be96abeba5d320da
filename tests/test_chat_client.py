"""The chat client against a real local HTTP server speaking the OpenAI protocol."""

import asyncio
import base64
import socket

import pytest
from chat_server import user_texts

from lyceum.errors import UserError
from lyceum.models.chat import ChatClient, ChatJSONError, user_message


def client_for(server, **kw):
    kw.setdefault("backoff", 0.01)
    return ChatClient(base_url=server.base_url, model="scripted", **kw)


def test_plain_completion_returns_text_and_usage(chat_server):
    chat_server.script("four")
    client = client_for(chat_server)
    result = client.complete_sync([user_message("What is two plus two?")], site="solver")
    assert result.text == "four"
    assert result.finish_reason == "stop"
    assert chat_server.requests[0]["model"] == "scripted"
    assert chat_server.requests[0]["messages"] == [{"role": "user", "content": "What is two plus two?"}]
    assert client.usage["solver"].prompt_tokens == 5
    assert client.usage["solver"].completion_tokens == 1


def test_retries_on_scripted_500_then_succeeds(chat_server):
    chat_server.script([{"status": 500}, {"status": 429}, "ok"])
    client = client_for(chat_server)
    assert client.complete_sync([user_message("hi")]).text == "ok"
    assert len(chat_server.requests) == 3
    assert client.usage["default"].retries == 2


def test_gives_up_after_max_retries_with_one_sentence(chat_server):
    chat_server.script([{"status": 503}] * 3)
    client = client_for(chat_server, max_retries=2)
    with pytest.raises(UserError, match="HTTP 503"):
        client.complete_sync([user_message("hi")])
    assert len(chat_server.requests) == 3


def test_client_error_is_not_retried(chat_server):
    chat_server.script([{"status": 400, "message": "bad model"}, "never"])
    client = client_for(chat_server)
    with pytest.raises(UserError, match="HTTP 400"):
        client.complete_sync([user_message("hi")])
    assert len(chat_server.requests) == 1


def test_cache_hit_makes_rerun_free(chat_server, tmp_path):
    chat_server.script(["first answer"])
    cache = tmp_path / "chat.sqlite"
    first = client_for(chat_server, cache=cache).complete_sync([user_message("q")], temperature=0)
    # a new client (a re-run of the program) on the same cache: no request reaches the server
    again_client = client_for(chat_server, cache=cache)
    again = again_client.complete_sync([user_message("q")], temperature=0)
    assert (first.text, first.cached) == ("first answer", False)
    assert (again.text, again.cached) == ("first answer", True)
    assert len(chat_server.requests) == 1
    assert again_client.usage["default"].cached_calls == 1


def test_cache_key_covers_parameters_and_tag(chat_server, tmp_path):
    chat_server.script(["a", "b", "c"])
    client = client_for(chat_server, cache=tmp_path / "c.sqlite")
    texts = [client.complete_sync([user_message("q")], temperature=0).text,
             client.complete_sync([user_message("q")], temperature=1).text,
             client.complete_sync([user_message("q")], temperature=0, cache_tag="attempt-2").text]
    assert texts == ["a", "b", "c"]


def test_concurrency_limit_bounds_in_flight_requests(chat_server):
    chat_server.script([{"content": f"r{i}", "delay": 0.15} for i in range(8)])
    client = client_for(chat_server, concurrency=3)

    async def many():
        return await asyncio.gather(*[client.complete([user_message(f"q{i}")]) for i in range(8)])

    results = asyncio.run(many())
    assert sorted(r.text for r in results) == sorted(f"r{i}" for i in range(8))
    assert chat_server.max_in_flight == 3


def test_images_are_sent_as_data_urls(chat_server, tmp_path):
    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake-but-bytes")
    chat_server.script("a diagram")
    client_for(chat_server).complete_sync([user_message("describe", images=[png])])
    parts = chat_server.requests[0]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "describe"}
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png.read_bytes()


def test_missing_image_is_a_user_error():
    with pytest.raises(UserError, match="image not found"):
        user_message("x", images=["/nonexistent.png"])


SCHEMA = {"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]}


def test_json_helper_accepts_fenced_json(chat_server):
    chat_server.script('Here you go:\n```json\n{"score": 0.5}\n```')
    assert client_for(chat_server).complete_json_sync([user_message("grade")], SCHEMA) == {"score": 0.5}


def test_json_helper_reasks_once_with_the_problem(chat_server):
    chat_server.script(['{"grade": 1}', '{"score": 1}'])
    assert client_for(chat_server).complete_json_sync([user_message("grade")], SCHEMA) == {"score": 1}
    assert "does not match the schema" in user_texts(chat_server.requests[1])


def test_json_helper_raises_after_second_invalid_reply(chat_server):
    chat_server.script(["not json", "still not json"])
    with pytest.raises(ChatJSONError):
        client_for(chat_server).complete_json_sync([user_message("grade")], SCHEMA)


def test_unreachable_endpoint_is_one_sentence():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff=0.01)
    with pytest.raises(UserError, match="cannot reach the chat endpoint"):
        client.complete_sync([user_message("hi")])


def test_missing_endpoint_or_model_is_explained(monkeypatch):
    with pytest.raises(UserError, match="--base-url"):
        ChatClient(model="m")
    with pytest.raises(UserError, match="--model"):
        ChatClient(base_url="http://localhost:1/v1")
    with pytest.raises(UserError, match="http"):
        ChatClient(base_url="localhost:8000", model="m")
