"""A real-time sentiment API over a fine-tuned checkpoint: a Flask app served by waitress.

    POST /predict   {"text": "..."} or {"texts": ["...", ...]}  -> label + probabilities per text
    GET  /health    {"status": "ok"} once the model is loaded
    GET  /metadata  model, labels, checkpoint metrics, training and serving versions, limits

Every client mistake is a JSON error for that request alone, never a 500: 400 for a body that is
not a JSON object with exactly one of `text` / `texts` holding non-empty strings of valid Unicode
that the tokenizer can read, 413 for a body, a text or a batch over the limits in `ServingLimits`,
415 for a compressed body. Each request's texts are checked against the tokenizer in its own
thread before they join a micro-batch, and a micro-batch that fails anyway is retried request by
request, so one bad request cannot fail the others batched with it. The model is loaded once, at start-up, by `Predictor`, and texts are
cleaned as the checkpoint's training texts were (its metadata's "cleaning"). `bench predict` is built on the
same `Predictor`: one model loading, cleaning, tokenisation and batching for both commands.

Threads on a small CPU (this project's reference machine has 2 cores). Two kinds of thread are in
play: waitress's worker threads, which read requests, parse JSON and write responses, and
PyTorch's intra-op threads, which run one forward pass. For short texts one forward pass is a few
small matrix products, too small to split across cores with profit, and OpenMP workers that
spin-wait fight every other process on a shared machine. So each forward pass runs on one torch
thread (`torch_threads=1`) and at most `cores // torch_threads` forward passes run at once, one
per core. Waitress threads are many more (default 32): they mostly wait, and each waiting request
is one more text the micro-batcher can put into the next forward pass (MicroBatcher), which is
where throughput under load comes from. docs/serving.md has the measurements behind both choices.
"""

from __future__ import annotations

import json
import logging
import queue
import select
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.checkpoint import json_type
from bench.errors import BenchError
from bench.harness.host import usable_cores
from bench.versions import package_versions

# What `bench serve --precision` / `bench loadtest --precision` accept (autocast around the forward
# pass); not the training precisions of bench.harness.topology.PRECISIONS.
SERVING_PRECISIONS = ("fp32", "bf16")
# Text cleanings a checkpoint's metadata may name (its "cleaning" key): serving cleans texts as
# training did. Only these names are honoured; nothing named in a checkpoint is imported blindly.
CLEANINGS = {"bench.data.text_cleaning.clean_for_model": ("bench.data.text_cleaning", "clean_for_model")}
# The cleaning of a checkpoint whose metadata has no "cleaning" key at all: bench wrote such
# checkpoints before it recorded the key, and their training texts were cleaned by clean_for_model
# (the sentiment workload has cleaned with it from the start). An explicit null means: not cleaned.
UNRECORDED_CLEANING = "bench.data.text_cleaning.clean_for_model"
SERVING_PACKAGES = ("torch", "transformers", "flask", "waitress", "werkzeug")

# Connection handling (waitress). Waitress's own defaults, 100 connections and 120 s before an idle
# connection is closed, let 100 idle or half-sent connections shut every other client out for two
# minutes. poll() has no FD_SETSIZE ceiling (select() stops at 1024 sockets, 512 on Windows, which
# has no poll()), so the connection limit can be ten times waitress's default where poll() exists.
HAS_POLL = hasattr(select, "poll")
DEFAULT_THREADS = 32
DEFAULT_CONNECTION_LIMIT = 1000 if HAS_POLL else 500
DEFAULT_CHANNEL_TIMEOUT = 30
SELECT_MAX_CONNECTIONS = 500
OPEN_FILES_MARGIN = 128
"""Open files the server needs besides its client sockets: model files, pipes, torch's and Python's."""
MIN_BODY_BYTES = 1024
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("bench.serving.serve")


@dataclass(frozen=True)
class ServingLimits:
    """Bounds on one request; past them the API answers 413 instead of doing unbounded work."""

    max_body_bytes: int = 2 * 2**20
    """Largest request body (Flask's MAX_CONTENT_LENGTH); checked before the body is parsed."""
    max_texts: int = 64
    """Most texts in one `texts` batch: one forward pass pads every text to the longest, so a
    batch costs up to max_texts x max_length tokens of compute."""
    max_text_chars: int = 5000
    """Longest text in characters. The model sees at most the checkpoint's `max_length` tokens
    (longer texts are truncated); this bound keeps tokenisation of a hostile text cheap."""


class RequestError(Exception):
    """A client mistake: becomes a JSON error with this HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UnreadableText(Exception):
    """Text number `index` of a request cannot be given to the model; `reason` says why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"text {index} {reason}")
        self.index = index
        self.reason = reason


SERVING_DEVICES = ("auto", "cpu", "cuda")


def serving_device(asked: str) -> str:
    """The torch device a checkpoint is served on: `auto` is the first CUDA GPU where there is one
    (CUDA_VISIBLE_DEVICES decides which), else the CPU; `cuda` where none is visible is an error."""
    import torch

    if asked not in SERVING_DEVICES:
        raise BenchError(f"unknown device {asked!r}; valid choices: {', '.join(SERVING_DEVICES)}")
    if asked == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: no CUDA GPU is visible to this process")
    if asked == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return asked


class Predictor:
    """A checkpoint loaded once, answering `predict(texts)` from any number of threads."""

    def __init__(self, checkpoint: Path, precision: str = "fp32", torch_threads: int | None = None,
                 device: str = "auto") -> None:
        from bench.checkpoint import load_checkpoint, read_metadata

        read_metadata(checkpoint)  # a wrong folder fails here, before torch is imported
        import torch
        from transformers.utils import logging as hf_logging

        if precision not in SERVING_PRECISIONS:
            raise BenchError(f"unknown precision {precision!r}; valid choices: {', '.join(SERVING_PRECISIONS)}")
        if torch_threads is not None:
            if torch_threads < 1:
                raise BenchError(f"--torch-threads must be at least 1, got {torch_threads}")
            torch.set_num_threads(torch_threads)
        hf_logging.disable_progress_bar()
        self.checkpoint = Path(checkpoint)
        self.precision = precision
        # load_checkpoint refuses a damaged folder, and labels or max_length that do not fit the model.
        self.model, self.tokenizer, self.metadata = load_checkpoint(self.checkpoint)
        self.labels: list[str] = list(self.metadata["labels"])
        self.max_length = int(self.metadata.get("max_length") or self.tokenizer.model_max_length)
        self.cleaning: str | None = self.metadata.get("cleaning", UNRECORDED_CLEANING)
        self._clean = _cleaning_function(self.cleaning, checkpoint)
        self.device = serving_device(device)
        self.model.to(self.device)
        self.torch_threads = torch.get_num_threads()
        # On a GPU one forward pass at a time: the GPU runs them one after another anyway.
        self.inference_slots = 1 if self.device != "cpu" else max(1, usable_cores() // self.torch_threads)
        # One forward pass per `torch_threads` cores at a time; more would only oversubscribe them.
        self._slots = threading.BoundedSemaphore(self.inference_slots)
        # A fast (Rust) tokenizer is not safe to call from several threads at once when the call sets
        # truncation/padding ("Already borrowed"), so tokenisation is serialised; it is cheap.
        self._tokenize_lock = threading.Lock()

    def clean(self, texts: list[str]) -> list[str]:
        """Texts cleaned as the checkpoint's training texts were (unchanged if it names no cleaning)."""
        return [self._clean(text) for text in texts] if self._clean else list(texts)

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Label and class probabilities for each raw text, in order."""
        return self.predict_cleaned(self.clean(texts))

    def check_readable(self, texts: list[str]) -> None:
        """UnreadableText for the first (cleaned) text the tokenizer fails on, or that gives it no token
        at all (only control, format or zero-width characters: the model would see an empty text).

        The API calls this in each request's own thread, before the request joins a micro-batch."""
        try:
            with self._tokenize_lock:
                encoded = self.tokenizer(texts, add_special_tokens=False, truncation=True,
                                         max_length=self.max_length)["input_ids"]
        except Exception:  # noqa: BLE001 - find which text, and say so
            encoded = None
        for i, text in enumerate(texts):
            if encoded is None:
                try:
                    with self._tokenize_lock:
                        ids = self.tokenizer(text, add_special_tokens=False, truncation=True,
                                             max_length=self.max_length)["input_ids"]
                except Exception as exc:  # noqa: BLE001 - whatever the tokenizer raises, this text is why
                    raise UnreadableText(i, f"cannot be read by the tokenizer ({type(exc).__name__})") from None
            else:
                ids = encoded[i]
            if not ids:
                raise UnreadableText(i, "has nothing the model can read (only control, format or zero-width "
                                        "characters)")

    def probabilities(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (texts x labels, float32) of already-cleaned texts, in input order.

        The one inference path of `bench serve` (one call per micro-batch) and `bench predict` (one
        call for a whole file). Texts are tokenised once, truncated at the checkpoint's max_length;
        when they do not fit in one forward pass of `batch_size` (None = all in one), they run in
        batches of similar token length, so that padding to each batch's longest text costs little.
        A text the tokenizer fails on is a RequestError (400), not an internal error."""
        import numpy as np
        import torch

        try:
            with self._tokenize_lock:
                encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        except Exception as exc:  # noqa: BLE001 - any tokenizer failure is about the texts given to it
            raise RequestError(f"a text cannot be read by the tokenizer ({type(exc).__name__})") from None
        size = batch_size or max(len(texts), 1)
        # Stable sort by length, so that equal-length texts keep their order within a batch.
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), size):
            index = order[start : start + size]
            with self._tokenize_lock:
                batch = self.tokenizer.pad([{key: encoded[key][i] for key in encoded} for i in index],
                                           return_tensors="pt")
            batch = {key: value.to(self.device) for key, value in batch.items()}
            with self._slots, torch.inference_mode(), torch.autocast(
                torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
            ):
                logits = self.model(**batch).logits
            out[index] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def predict_cleaned(self, texts: list[str]) -> list[dict[str, Any]]:
        """Label and class probabilities for each already-cleaned text, in order (one forward pass).

        A text the tokenizer fails on is a RequestError (400), not an internal error."""
        probabilities = self.probabilities(texts).tolist()
        return [
            {
                "label": self.labels[max(range(len(row)), key=row.__getitem__)],
                "probabilities": dict(zip(self.labels, row, strict=True)),
            }
            for row in probabilities
        ]

    def describe(self) -> dict[str, Any]:
        """What GET /metadata reports about the model and how it is served."""
        meta = self.metadata
        return {
            "checkpoint": self.checkpoint.name,
            "workload": meta.get("workload"),
            "base_model": meta.get("base_model"),
            "labels": self.labels,
            "max_length": self.max_length,
            "cleaning": self.cleaning,
            "metrics": meta.get("metrics", {}),
            "cell": meta.get("cell"),
            "created_utc": meta.get("created_utc"),
            "trained_with": meta.get("packages", {}),
            "serving": {
                "precision": self.precision,
                "device": self.device,
                "torch_threads": self.torch_threads,
                "inference_slots": self.inference_slots,
                "packages": package_versions(SERVING_PACKAGES),
            },
        }


class MicroBatcher:
    """Runs the texts of concurrent requests through the model together, one forward pass per batch.

    Greedy ("natural") batching: each of `predictor.inference_slots` worker threads takes the
    oldest waiting request, then every request already queued behind it, up to `max_batch` texts,
    and runs them as one padded batch. Nothing waits for a batch to fill: a lone client sees no
    added latency, and requests pile up into larger batches only while the workers are busy, which
    is when batching pays (a batch of 8 short texts costs far less than 8 forward passes on CPU).

    A batch that fails is run again request by request, so that only a request that fails on its
    own gets the error; the others get their answers as if they had never shared a batch with it.
    """

    def __init__(self, predictor: Predictor, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise BenchError(f"--micro-batch must be at least 1, got {max_batch}")
        self.predictor = predictor
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, name=f"micro-batch-{i}", daemon=True)
                         for i in range(predictor.inference_slots)]
        for worker in self._workers:
            worker.start()

    def predict_cleaned(self, texts: list[str]) -> list[dict[str, Any]]:
        """Blocks until a worker has run these (already cleaned) texts, possibly with others'."""
        pending = _Pending(texts)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def close(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()

    def _work(self) -> None:
        while (first := self._queue.get()) is not None:
            batch, stop = [first], False
            while sum(len(p.texts) for p in batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Pending]) -> None:
        try:
            answers = self.predictor.predict_cleaned([text for p in batch for text in p.texts])
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request thread, which re-raises it
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            log.warning("a micro-batch of %d requests failed (%s: %s); running them one by one", len(batch),
                        type(exc).__name__, str(exc)[:200])
            for p in batch:
                self._run([p])
            return
        for p in batch:
            p.result, answers = answers[: len(p.texts)], answers[len(p.texts):]
            p.done.set()


@dataclass
class _Pending:
    texts: list[str]
    result: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _cleaning_function(name: str | None, checkpoint: Path):
    if not name:
        return None
    if name not in CLEANINGS:
        raise BenchError(f"{checkpoint}: unknown text cleaning {name!r} in its metadata; known: {', '.join(CLEANINGS)}")
    import importlib

    module, function = CLEANINGS[name]
    return getattr(importlib.import_module(module), function)


def parse_predict_request(body: bytes, limits: ServingLimits, content_type: str | None = None) -> tuple[list[str], bool]:
    """(texts, single) from a /predict body, or RequestError naming what is wrong with it.

    `content_type` (the request's mimetype) only words the error for a form sent instead of JSON."""
    hint = ""
    if content_type in FORM_TYPES:
        hint = (f"; the body must be the JSON object itself, e.g. {{\"text\": \"...\"}}, not a form "
                f"(this request was sent as {content_type})")
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(f"body is not UTF-8 text{hint}") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}){hint}") from None
    except RecursionError:
        raise RequestError("body is not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # Python's limit on integer digits (4300): a number no text needs
        raise RequestError(f"body holds a number too long to read ({str(exc).split(';')[0]})") from None
    if not isinstance(payload, dict):
        raise RequestError(f'body must be a JSON object like {{"text": "..."}}, got a JSON {json_type(payload)}')
    unknown = sorted(set(payload) - {"text", "texts"})
    if unknown:
        shown = ", ".join(_short_repr(name) for name in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise RequestError(f"unknown field(s) {shown}{more}; send either 'text' or 'texts'")
    if ("text" in payload) == ("texts" in payload):
        raise RequestError("send exactly one of 'text' (a string) or 'texts' (a list of strings)")
    if "text" in payload:
        _check_text(payload["text"], "'text'", limits)
        return [payload["text"]], True
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError(f"'texts' must be a list of strings, got a JSON {json_type(texts)}")
    if not texts:
        raise RequestError("'texts' is empty; send at least one text")
    if len(texts) > limits.max_texts:
        raise RequestError(f"'texts' holds {len(texts)} texts; at most {limits.max_texts} per request", 413)
    for i, text in enumerate(texts):
        _check_text(text, f"'texts'[{i}]", limits)
    return texts, False


def _check_text(text: Any, where: str, limits: ServingLimits) -> None:
    if not isinstance(text, str):
        raise RequestError(f"{where} must be a string, got a JSON {json_type(text)}")
    if not text.strip():
        raise RequestError(f"{where} is empty")
    if len(text) > limits.max_text_chars:
        raise RequestError(f"{where} has {len(text)} characters; at most {limits.max_text_chars}", 413)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON may escape half a UTF-16 pair ("\\ud800"); no tokenizer takes it
        raise RequestError(f"{where} holds a lone surrogate ({text[exc.start]!r} at character {exc.start}), "
                           "which is not valid Unicode") from None


def _short_repr(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def create_app(predictor: Predictor, limits: ServingLimits | None = None, batcher: MicroBatcher | None = None):
    """The Flask app over an already-loaded predictor (tests drive it through app.test_client()).

    With a `batcher`, concurrent requests share forward passes (see MicroBatcher)."""
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException

    limits = limits or ServingLimits()
    app = Flask("bench.serving.serve")
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
    app.json.sort_keys = False
    described = {**predictor.describe(), "limits": asdict(limits)}
    described["serving"]["micro_batch"] = batcher.max_batch if batcher else None
    run_model = batcher.predict_cleaned if batcher else predictor.predict_cleaned

    def error(message: str, status: int):
        return jsonify({"error": message, "status": status}), status

    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError):
        return error(str(exc), exc.status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # 404, 405 and 413 (MAX_CONTENT_LENGTH) as JSON like every other answer.
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body is larger than {limits.max_body_bytes} bytes"
        return error(message, exc.code or 500)

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.get("/metadata")
    def metadata():
        return jsonify(described)

    @app.post("/predict")
    def predict():
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise RequestError(f"Content-Encoding {_short_repr(encoding)[1:-1]} is not supported; send the JSON "
                               "body uncompressed", 415)
        # Read the raw body (any Content-Type) so that malformed JSON is a 400 we word ourselves;
        # reading past MAX_CONTENT_LENGTH raises werkzeug's 413 before anything is parsed.
        texts, single = parse_predict_request(request.get_data(cache=False), limits, request.mimetype)
        cleaned = predictor.clean(texts)
        for i, text in enumerate(cleaned):
            if not text.strip():
                where = "'text'" if single else f"'texts'[{i}]"
                raise RequestError(f"{where} has no text left after cleaning ({predictor.cleaning}: markup and URLs "
                                   "are removed)")
        # In this request's own thread: a text the tokenizer cannot take never reaches a shared batch.
        try:
            predictor.check_readable(cleaned)
        except UnreadableText as exc:
            where = "'text'" if single else f"'texts'[{exc.index}]"
            raise RequestError(f"{where} {exc.reason}") from None
        predictions = run_model(cleaned)
        return jsonify(predictions[0] if single else {"predictions": predictions})

    return app


def make_server(app, host: str = "127.0.0.1", port: int = 8000, threads: int = DEFAULT_THREADS,
                limits: ServingLimits | None = None, connection_limit: int = DEFAULT_CONNECTION_LIMIT,
                channel_timeout: int = DEFAULT_CHANNEL_TIMEOUT):
    """A waitress server bound to host:port (port 0 = a free port; read `server_url(server)`).

    Waitress buffers a whole body before the app sees it (up to 1 GiB by default), so it is told to
    refuse absurd bodies itself; bodies just over the app's limit still reach Flask, which answers
    with a JSON 413. Waitress reads requests and holds idle connections in one asyncore loop, not in
    its worker threads, so slow clients cost a socket each, not a thread: `connection_limit` bounds
    the sockets, and `channel_timeout` closes one that has seen no byte in or out for that many
    seconds (a half-sent request included), checked every channel_timeout / 2 seconds.
    """
    from waitress import create_server

    limits = limits or ServingLimits()
    check_server_settings(threads, connection_limit, channel_timeout, limits.max_body_bytes)
    ensure_open_files(connection_limit)
    try:
        return create_server(app, host=host, port=port, threads=threads, ident="bench-serve",
                             max_request_body_size=4 * limits.max_body_bytes, connection_limit=connection_limit,
                             channel_timeout=channel_timeout, cleanup_interval=max(1, min(30, channel_timeout // 2)),
                             asyncore_use_poll=HAS_POLL)
    except OSError as exc:
        raise BenchError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def check_server_settings(threads: int, connection_limit: int, channel_timeout: int, max_body_bytes: int) -> None:
    """BenchError, naming the flag, for a setting `bench serve` cannot run with."""
    if threads < 1:
        raise BenchError(f"--threads must be at least 1, got {threads}")
    if connection_limit < 1:
        raise BenchError(f"--connection-limit must be at least 1, got {connection_limit}")
    if not HAS_POLL and connection_limit > SELECT_MAX_CONNECTIONS:
        raise BenchError(f"--connection-limit {connection_limit}: at most {SELECT_MAX_CONNECTIONS} on this platform "
                         "(no poll(); select() handles no more sockets)")
    if channel_timeout < 1:
        raise BenchError(f"--channel-timeout must be at least 1 second, got {channel_timeout}")
    if max_body_bytes < MIN_BODY_BYTES:
        raise BenchError(f"--max-body-bytes must be at least {MIN_BODY_BYTES}, got {max_body_bytes}")


def ensure_open_files(connection_limit: int) -> None:
    """Raise this process's soft limit on open files so that `connection_limit` sockets fit, or
    BenchError where the hard limit does not allow it (a server out of file descriptors fails every
    accept() and spins). Nothing to do where the OS has no such per-process limit (Windows)."""
    try:
        import resource
    except ImportError:
        return
    needed = connection_limit + OPEN_FILES_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(f"--connection-limit {connection_limit} needs about {needed} open files but this process may "
                         f"open only {hard} (ulimit -n); lower --connection-limit or raise the limit")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (ValueError, OSError) as exc:
        raise BenchError(f"--connection-limit {connection_limit} needs about {needed} open files; raising the limit "
                         f"from {soft} failed ({exc})") from None


def server_url(server) -> str:
    host = server.effective_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{server.effective_port}"
