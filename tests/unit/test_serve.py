"""The sentiment API: its contract and bad-request table through Flask's test client, then one real
waitress server on a free loopback port answering concurrent HTTP clients and stopping cleanly.

The tests that start processes are in tests/e2e/test_serve.py."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.checkpoint import METADATA_FILE
from bench.cli import main
from bench.errors import BenchError
from bench.serving.loadtest import loopback_address
from bench.serving.serve import MicroBatcher, Predictor, RequestError, ServingLimits, create_app
from tests.helpers.serve import LABELS, open_slow_clients

LIMITS = ServingLimits(max_body_bytes=4096, max_texts=4, max_text_chars=200)


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor(checkpoint)


@pytest.fixture(scope="module")
def client(predictor):
    return create_app(predictor, LIMITS).test_client()


def direct_probabilities(predictor: Predictor, text: str) -> list[float]:
    """The model's own answer for one text, without the API."""
    import torch

    batch = predictor.tokenizer([text], truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(predictor.model(**batch).logits, dim=-1)[0].tolist()


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_metadata_names_model_metrics_versions_and_limits(client):
    meta = client.get("/metadata").get_json()
    assert meta["workload"] == "sentiment"
    assert meta["base_model"] == "all-MiniLM-L6-v2"
    assert meta["labels"] == LABELS
    assert meta["cleaning"] == "bench.data.text_cleaning.clean_for_model"
    assert meta["metrics"] == {"accuracy": 0.5}
    assert meta["serving"]["precision"] == "fp32"
    assert {"torch", "transformers", "flask", "waitress"} <= set(meta["serving"]["packages"])
    assert meta["trained_with"]["torch"]
    assert meta["limits"] == {"max_body_bytes": 4096, "max_texts": 4, "max_text_chars": 200}


def test_predict_one_text_matches_the_model(client, predictor):
    text = "The battery died after a week and support never answered."
    response = client.post("/predict", json={"text": text})
    assert response.status_code == 200
    answer = response.get_json()
    expected = direct_probabilities(predictor, text)
    assert list(answer["probabilities"]) == LABELS
    assert list(answer["probabilities"].values()) == pytest.approx(expected, abs=1e-6)
    assert answer["label"] == LABELS[expected.index(max(expected))]


def test_predict_batch_keeps_order_and_agrees_with_single_texts(client):
    texts = ["Great phone.", "It broke on the first day and I want my money back.", "ok"]
    batch = client.post("/predict", json={"texts": texts}).get_json()["predictions"]
    assert len(batch) == 3
    for text, answer in zip(texts, batch, strict=True):
        single = client.post("/predict", json={"text": text}).get_json()
        assert answer["label"] == single["label"]
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
        # Padding to the longest text in the batch must not change a text's answer.
        for label in LABELS:
            assert answer["probabilities"][label] == pytest.approx(single["probabilities"][label], abs=1e-5)


def test_texts_are_cleaned_as_in_training(client):
    plain = client.post("/predict", json={"text": "Great phone & case"}).get_json()
    marked_up = client.post("/predict", json={"text": "<b>Great</b>   phone &amp; case https://example.com/x"}).get_json()
    assert marked_up == plain


def test_long_text_is_truncated_to_max_length_not_refused(client):
    response = client.post("/predict", json={"text": "good " * 39})  # 195 chars, > 128 tokens with specials
    assert response.status_code == 200


def test_bf16_autocast_gives_probabilities_close_to_fp32(checkpoint, predictor):
    texts = ["I love this case.", "Worst purchase ever."]
    bf16 = Predictor(checkpoint, precision="bf16").predict(texts)
    fp32 = predictor.predict(texts)
    for a, b in zip(bf16, fp32, strict=True):
        assert sum(a["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        for label in LABELS:
            assert a["probabilities"][label] == pytest.approx(b["probabilities"][label], abs=0.02)


class SlowEchoPredictor:
    """Stands in for the model: answers each text with itself, slowly, and records batch sizes."""

    inference_slots = 1

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def predict_cleaned(self, texts):
        self.batch_sizes.append(len(texts))
        time.sleep(0.2)
        if "boom" in texts:
            raise RuntimeError("model failed")
        return [{"label": text} for text in texts]


def run_concurrently(function, inputs):
    barrier = threading.Barrier(len(inputs))

    def call(item):
        barrier.wait()
        return function(item)

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(call, inputs))


def test_micro_batcher_merges_waiting_requests_and_routes_each_answer_back():
    model = SlowEchoPredictor()
    batcher = MicroBatcher(model, max_batch=5)
    requests = [[f"t{i}"] for i in range(8)] + [["a", "b", "c"]]
    answers = run_concurrently(batcher.predict_cleaned, requests)
    batcher.close()
    assert answers == [[{"label": t} for t in texts] for texts in requests]
    assert sum(model.batch_sizes) == 11
    assert max(model.batch_sizes) > 1  # requests that waited behind the first one shared a forward pass
    assert all(size < 5 + 3 for size in model.batch_sizes)  # stops taking requests once it holds >= 5 texts


def test_micro_batcher_hands_a_model_error_to_its_request_and_survives():
    batcher = MicroBatcher(SlowEchoPredictor(), max_batch=8)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.predict_cleaned(["boom"])
    assert batcher.predict_cleaned(["fine"]) == [{"label": "fine"}]  # the worker survived
    batcher.close()


class GatedEchoPredictor(SlowEchoPredictor):
    """SlowEchoPredictor whose first forward pass waits for `gate`, so that the requests sent meanwhile
    are certain to queue up and be taken together as the next batch."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.gate = threading.Event()

    def predict_cleaned(self, texts):
        if not self.started.is_set():
            self.started.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return super().predict_cleaned(texts)


def queue_then_release(batcher: MicroBatcher, model: GatedEchoPredictor, requests: list[list[str]], queued: int):
    """Send ["first"] alone, then `requests` concurrently once it holds the worker; each answer or exception."""

    def call(texts):
        try:
            return batcher.predict_cleaned(texts)
        except Exception as exc:  # noqa: BLE001 - the test looks at what each request got
            return exc

    with ThreadPoolExecutor(len(requests) + 1) as pool:
        first = pool.submit(call, ["first"])
        assert model.started.wait(60)
        answers = [pool.submit(call, texts) for texts in requests]
        deadline = time.monotonic() + 60
        while batcher._queue.qsize() < queued and time.monotonic() < deadline:
            time.sleep(0.01)
        model.gate.set()
        return first.result(), [answer.result() for answer in answers]


def test_micro_batcher_retries_a_failed_batch_request_by_request():
    model = GatedEchoPredictor()
    batcher = MicroBatcher(model, max_batch=16)
    requests = [["a"], ["boom"], ["b", "c"], ["d"]]
    first, answers = queue_then_release(batcher, model, requests, queued=len(requests))
    batcher.close()
    assert first == [{"label": "first"}]
    assert model.batch_sizes[:2] == [1, 5]  # the four requests were taken together, and that batch failed
    assert answers[0] == [{"label": "a"}]
    assert isinstance(answers[1], RuntimeError)  # only the request that breaks the model fails
    assert answers[2] == [{"label": "b"}, {"label": "c"}]
    assert answers[3] == [{"label": "d"}]


def test_micro_batched_app_answers_concurrent_requests_like_the_model(predictor):
    batcher = MicroBatcher(predictor, max_batch=16)
    app = create_app(predictor, LIMITS, batcher)
    texts = ["Great phone.", "Awful, it broke.", "Fine for the price.", "Never again.", "Love it!", "meh"] * 2
    answers = run_concurrently(lambda text: app.test_client().post("/predict", json={"text": text}).get_json(), texts)
    batcher.close()
    assert app.test_client().get("/metadata").get_json()["serving"]["micro_batch"] == 16
    for text, answer in zip(texts, answers, strict=True):
        assert list(answer["probabilities"].values()) == pytest.approx(direct_probabilities(predictor, text), abs=1e-5)


BAD_REQUESTS = [
    # (case, raw body, status, words the error must contain)
    ("malformed JSON", b'{"text": ', 400, "not valid JSON"),
    ("empty body", b"", 400, "not valid JSON"),
    ("not UTF-8", b'{"text": "\xff\xfe"}', 400, "UTF-8"),
    ("deeply nested JSON", b"[" * 2000 + b"]" * 2000, 400, "JSON"),
    ("top level is a list", b'["good"]', 400, "JSON object"),
    ("top level is a string", b'"good"', 400, "JSON object"),
    ("neither field", b"{}", 400, "exactly one of"),
    ("both fields", b'{"text": "a", "texts": ["b"]}', 400, "exactly one of"),
    ("unknown field", b'{"txt": "good"}', 400, "unknown field"),
    ("text is a number", b'{"text": 5}', 400, "must be a string"),
    ("text is null", b'{"text": null}', 400, "must be a string"),
    ("text is empty", b'{"text": ""}', 400, "empty"),
    ("text is whitespace", b'{"text": "  \\n "}', 400, "empty"),
    ("texts is a string", b'{"texts": "good"}', 400, "must be a list"),
    ("texts is empty", b'{"texts": []}', 400, "empty"),
    ("texts holds a number", b'{"texts": ["good", 3]}', 400, "'texts'[1] must be a string"),
    ("texts holds an empty text", b'{"texts": ["good", ""]}', 400, "'texts'[1] is empty"),
    ("text is only markup", b'{"text": "<br/> https://example.com"}', 400, "no text left after cleaning"),
    ("a text of a batch is only markup", b'{"texts": ["good", "&lt;p&gt;"]}', 400, "'texts'[1] has no text left"),
    ("text too long", json.dumps({"text": "a" * 201}).encode(), 413, "at most 200"),
    ("batch too large", json.dumps({"texts": ["a"] * 5}).encode(), 413, "at most 4"),
    ("body too large", json.dumps({"text": "a" * 5000}).encode(), 413, "larger than 4096 bytes"),
]


@pytest.mark.parametrize(("body", "status", "words"), [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_request_is_a_json_error(client, body, status, words):
    response = client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.is_json
    answer = response.get_json()
    assert answer["status"] == status
    assert words in answer["error"]


@pytest.mark.parametrize(("method", "path", "status"), [("get", "/predict", 405), ("post", "/health", 405),
                                                        ("get", "/nowhere", 404)])
def test_wrong_method_or_path_is_a_json_error(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.get_json()["status"] == status


def test_body_without_json_content_type_is_still_read(client):
    response = client.post("/predict", data='{"text": "fine"}', content_type="text/plain")
    assert response.status_code == 200


ATTACKS = [
    # (case, raw body, status, words the error must contain)
    ("lone high surrogate", b'{"text": "\\ud800"}', 400, "'text' holds a lone surrogate"),
    ("lone low surrogate inside a text", b'{"text": "good \\udfff bad"}', 400, "'text' holds a lone surrogate"),
    ("lone surrogate in a batch", b'{"texts": ["fine", "\\ud83d"]}', 400, "'texts'[1] holds a lone surrogate"),
    ("number with 5,000 digits", b'{"text": ' + b"7" * 5000 + b"}", 400, "number too long"),
    ("number with 5,000 digits in texts", b'{"texts": [' + b"7" * 5000 + b"]}", 400, "number too long"),
    ("only zero-width characters", b'{"text": "\\u200b\\u200d\\u2060"}', 400, "nothing the model can read"),
    ("only a byte-order mark", b'{"text": "\\ufeff"}', 400, "nothing the model can read"),
    ("only control characters", b'{"text": "\\u0000\\u0001\\u007f"}', 400, "nothing the model can read"),
    ("only replacement characters", b'{"text": "\\ufffd\\ufffd"}', 400, "nothing the model can read"),
    ("a text of a batch only invisible", b'{"texts": ["good", "\\u200b"]}', 400, "'texts'[1] has nothing"),
]


@pytest.fixture(scope="module")
def default_client(predictor):
    return create_app(predictor).test_client()


@pytest.mark.parametrize(("body", "status", "words"), [case[1:] for case in ATTACKS], ids=[case[0] for case in ATTACKS])
def test_attack_is_a_json_client_error(default_client, body, status, words):
    response = default_client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.is_json
    assert words in response.get_json()["error"]


def test_valid_unicode_is_not_mistaken_for_an_attack(default_client):
    pair = default_client.post("/predict", data=b'{"text": "love it \\ud83d\\ude00"}', content_type="application/json")
    assert pair.status_code == 200  # an escaped surrogate pair is one valid character
    for text in ["love it \U0001f600", "caf\u00e9 \u2014 tr\u00e8s bien", "zero\u200bwidth inside words"]:
        response = default_client.post("/predict", json={"text": text})
        assert response.status_code == 200, text


def test_many_unknown_fields_give_a_short_error(default_client):
    body = json.dumps({f"field{i}": i for i in range(20000)} | {"x" * 100000: 1}).encode()
    response = default_client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith("unknown field") and error.count("'field") == 5 and "and 19996 more" in error
    assert len(error) < 400  # not an echo of the 20,001 names (up to 2 MiB) sent


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\ngood\r\n--x--\r\n'),
    ("application/x-www-form-urlencoded", b"text=good"),
])
def test_a_form_upload_is_told_to_send_json(default_client, content_type, body):
    response = default_client.post("/predict", data=body, content_type=content_type)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "not valid JSON" in error and content_type.split(";")[0] in error


def test_a_compressed_body_is_refused_not_misread(default_client):
    import gzip

    response = default_client.post("/predict", data=gzip.compress(b'{"text": "good"}'),
                                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 415
    assert "Content-Encoding gzip" in response.get_json()["error"]
    plain = default_client.post("/predict", data=b'{"text": "good"}',
                                headers={"Content-Type": "application/json", "Content-Encoding": "identity"})
    assert plain.status_code == 200


def test_predictor_turns_a_text_the_tokenizer_cannot_read_into_a_request_error(predictor):
    # The API refuses such texts before they reach the model; this is the line behind that check.
    with pytest.raises(RequestError) as caught:
        predictor.predict_cleaned(["fine", "bad \ud800"])
    assert caught.value.status == 400


class GatedPredictor:
    """The real predictor behind a gate on its first forward pass (see GatedEchoPredictor)."""

    inference_slots = 1

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.batch_sizes: list[int] = []
        self.started = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def predict_cleaned(self, texts):
        if not self.started.is_set():
            self.started.set()
            assert self.gate.wait(60), "the test never opened the gate"
        self.batch_sizes.append(len(texts))
        return self.predictor.predict_cleaned(texts)


def test_a_poisoned_request_fails_alone_among_concurrent_innocents(predictor):
    """The issue's case: one request the tokenizer cannot read used to fail its whole micro-batch."""
    model = GatedPredictor(predictor)
    batcher = MicroBatcher(model, max_batch=64)
    app = create_app(model, batcher=batcher)
    innocents = [f"review {i}: it works, I like it" for i in range(12)]
    poison = [b'{"text": "bad \\ud800 text"}', b'{"texts": ["ok", "\\udfff"]}', b'{"text": "\\u200b"}']

    def post(body: bytes):
        return app.test_client().post("/predict", data=body, content_type="application/json")

    with ThreadPoolExecutor(len(innocents) + len(poison) + 1) as pool:
        first = pool.submit(post, json.dumps({"text": "first"}).encode())
        assert model.started.wait(60)
        sent = [pool.submit(post, json.dumps({"text": text}).encode()) for text in innocents[:6]]
        sent += [pool.submit(post, body) for body in poison]
        sent += [pool.submit(post, json.dumps({"text": text}).encode()) for text in innocents[6:]]
        deadline = time.monotonic() + 60  # all requests that reach the model wait behind the first one
        while batcher._queue.qsize() < len(innocents) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # on the old code the poison requests reach the queue too
        model.gate.set()
        responses = [future.result() for future in sent]
    batcher.close()
    assert first.result().status_code == 200
    statuses = [response.status_code for response in responses]
    assert statuses == [200] * 6 + [400] * 3 + [200] * 6
    assert max(model.batch_sizes[1:]) > 1  # the innocents did share forward passes
    answers = [response.get_json() for response in responses[:6] + responses[9:]]
    for text, answer in zip(innocents, answers, strict=True):
        assert list(answer["probabilities"].values()) == pytest.approx(direct_probabilities(predictor, text), abs=1e-5)


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": ["neg", "neutral", "pos"]}, "3 labels but the model has 2 outputs"),
    ({"cleaning": "os.system"}, "unknown text cleaning 'os.system'"),
])
def test_checkpoint_metadata_the_server_cannot_honour_is_refused(checkpoint, tmp_path, change, message):
    for item in checkpoint.iterdir():
        (tmp_path / item.name).symlink_to(item)
    meta = json.loads((checkpoint / METADATA_FILE).read_text())
    (tmp_path / METADATA_FILE).unlink()
    (tmp_path / METADATA_FILE).write_text(json.dumps({**meta, **change}))
    with pytest.raises(BenchError, match=message):
        Predictor(tmp_path)


def test_serve_refuses_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a bench checkpoint" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "https://127.0.0.1:8000", "127.0.0.1:8000"])
def test_loadtest_only_targets_loopback_http(url):
    with pytest.raises(BenchError, match="--url"):
        loopback_address(url)


@pytest.mark.parametrize(("flags", "words"), [
    (["--connection-limit", "0"], "--connection-limit"),
    (["--channel-timeout", "0"], "--channel-timeout"),
    (["--max-body-bytes", "100"], "--max-body-bytes"),
    (["--threads", "0"], "--threads"),
])
def test_serve_flag_out_of_range_is_a_one_line_error(tmp_path, capsys, flags, words):
    # Checked before the checkpoint is read (tmp_path is not one), so a typo costs no model load.
    assert main(["serve", "--checkpoint", str(tmp_path), "--port", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and words in err and len(err.strip().splitlines()) == 1


def test_idle_and_half_sent_connections_are_closed_after_the_channel_timeout():
    from flask import Flask

    from bench.serving.serve import make_server

    app = Flask("idle")
    app.get("/health")(lambda: {"status": "ok"})
    server = make_server(app, port=0, threads=2, channel_timeout=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    sockets = open_slow_clients("127.0.0.1", server.effective_port, 3)
    try:
        for sock in sockets:
            sock.settimeout(30)  # a bound against a hang only: the server should close it after 2 to 3 s
            while sock.recv(4096):  # b"" once the server has closed the connection
                pass
    finally:
        for sock in sockets:
            sock.close()
        server.close()
        server.task_dispatcher.shutdown()
        thread.join(10)


def test_the_model_is_served_on_the_device_asked_for(checkpoint, predictor):
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert predictor.device == expected  # the default, auto: a visible GPU, else the CPU
    assert predictor.describe()["serving"]["device"] == expected
    assert next(predictor.model.parameters()).device.type == expected
    on_cpu = Predictor(checkpoint, device="cpu")
    assert on_cpu.device == "cpu" and next(on_cpu.model.parameters()).device.type == "cpu"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this host has a CUDA GPU")
def test_asking_for_a_gpu_where_there_is_none_is_one_line_and_exit_2(checkpoint, tmp_path, capsys):
    with pytest.raises(BenchError, match="no CUDA GPU is visible"):
        Predictor(checkpoint, device="cuda")
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("great phone\n")
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(reviews), "--device", "cuda",
                 "--output", str(tmp_path / "out.csv")]) == 2
    assert capsys.readouterr().err.strip() == "error: --device cuda: no CUDA GPU is visible to this process"
    assert not (tmp_path / "out.csv").exists()

