"""Makes the priors of a run: finds what is cached, generates the rest with retries, records every item.

Texts come first (one request per class gives its k sentences); image i of a class is made from sentence i,
so its request is sent as soon as the class's texts exist. API backends run `concurrency` requests at once
in their own thread pool; local backends share one single-thread pool, so models run one item at a time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.common import UserError
from pipeline.priors.backends import ImageBackend, ImageRequest, TextBackend, TextRequest
from pipeline.priors.cache import PriorCache
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import (
    FatalBackendError,
    Interrupted,
    ItemError,
    MalformedOutput,
    RetryPolicy,
    TransientError,
    UnexpectedError,
    Usage,
    redact,
)
from pipeline.priors.keys import content_key, item_seed
from pipeline.priors.manifest import Manifest
from pipeline.priors.names import humanize
from pipeline.priors.validate import check_sentences, to_fixed_rgb


class Progress:
    """What the runner reports while it works. This base reports nothing; the CLI shows a progress bar."""

    def start(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def add_total(self, delta: int) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Failure:
    what: str  # "texts" or "image 2"
    reason: str  # refused | malformed | transient | failed | error | interrupted
    detail: str


@dataclass
class ClassResult:
    name: str
    k: int
    texts: list[str] | None = None
    images: list[str | None] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    text_item: str | None = None  # where the texts are, relative to the cache

    @property
    def complete(self) -> bool:
        return self.texts is not None and len(self.images) == self.k and all(self.images)


@dataclass
class Tally:
    generated: int = 0
    cached: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)


@dataclass
class RunReport:
    k: int
    classes: dict[str, ClassResult]
    texts: Tally = field(default_factory=Tally)
    images: Tally = field(default_factory=Tally)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def incomplete(self) -> list[ClassResult]:
        return [result for result in self.classes.values() if not result.complete]


@dataclass
class PlannedClass:
    name: str
    action: str
    messages: list[dict[str, str]]
    text_key: str
    texts: list[str] | None  # cached sentences, or None when they must be made
    images_cached: list[bool] | None  # per image, known only once the texts are


@dataclass
class _Done:
    value: Any
    usage: Usage
    attempts: int
    request_id: str | None = None


class PriorRunner:
    def __init__(self, cfg: GenerateConfig, text_backend: TextBackend, image_backend: ImageBackend,
                 cache: PriorCache | None = None, progress: Progress | None = None,
                 policy: RetryPolicy | None = None):
        self.cfg = cfg
        self.text = text_backend
        self.image = image_backend
        self.cache = cache or PriorCache(cfg.out)
        self.progress = progress or Progress()
        self.policy = policy or RetryPolicy(cfg.max_retries, cfg.malformed_retries, cfg.backoff_s, cfg.backoff_max_s)
        self._stop = threading.Event()
        self._manifest: Manifest | None = None
        # At most `concurrency` requests in flight per API backend. The pools hold twice as many threads, so a
        # finished item is checked, resized and written while the next request is already on its way.
        self._text_slots = _slots(cfg.concurrency if text_backend.remote else None)
        self._image_slots = _slots(cfg.concurrency if image_backend.remote else None)

    # -- keys and plan -------------------------------------------------------------------------------------

    def text_key(self, name: str, messages: list[dict[str, str]]) -> str:
        return content_key({
            "kind": "text", "class": name, "backend": self.text.name, "model": self.text.model,
            "messages": messages, "k": self.cfg.k, "seed": self.cfg.seed, **self.text.key_fields(),
        })

    def image_request(self, name: str, action: str, index: int, sentence: str) -> ImageRequest:
        prompt = self.cfg.image_prompt.format(action=action, sentence=sentence)
        return ImageRequest(name, action, sentence, prompt, index, item_seed(self.cfg.seed, name, index))

    def image_key(self, request: ImageRequest) -> str:
        """Depends on the sentence (through the prompt), never on the text backend: a new image backend reuses
        the cached texts, and new texts get new images."""
        return content_key({
            "kind": "image", "class": request.class_name, "backend": self.image.name, "model": self.image.model,
            "prompt": request.prompt if self.image.uses_prompt else None, "index": request.index,
            "seed": self.cfg.seed, "size": self.cfg.image_size, **self.image.key_fields(request),
        })

    def plan(self, classes: list[str]) -> list[PlannedClass]:
        planned = []
        for name in dict.fromkeys(classes):
            action = humanize(name)
            messages = self.text.messages(action, self.cfg.k)
            key = self.text_key(name, messages)
            texts = self.cache.load_texts(name, key, self.cfg.k)
            images_cached = None
            if texts is not None:
                images_cached = [
                    self.cache.has_image(name, self.image_key(self.image_request(name, action, i, sentence)))
                    for i, sentence in enumerate(texts)
                ]
            planned.append(PlannedClass(name, action, messages, key, texts, images_cached))
        return planned

    # -- one item, with retries ----------------------------------------------------------------------------

    def _with_retries(self, attempt_fn) -> _Done:
        """attempt_fn(n) -> (value, usage, request_id), n counting the malformed answers so far."""
        transient = malformed = 0
        billed = Usage()
        while True:
            if self._stop.is_set():
                raise Interrupted("run stopped before this item was made", usage=billed)
            try:
                value, usage, request_id = attempt_fn(malformed)
                return _Done(value, billed + usage, transient + malformed + 1, request_id)
            except FatalBackendError:
                raise
            except ItemError as err:
                billed = billed + err.usage
                transient += isinstance(err, TransientError)
                malformed += isinstance(err, MalformedOutput)
                if not self.policy.allows(err, transient, malformed):
                    err.usage = billed
                    err.attempts = transient + malformed + (0 if err.retryable else 1)
                    raise
                retry = transient if isinstance(err, TransientError) else malformed
                if self._stop.wait(self.policy.delay(retry, err.retry_after)):
                    raise Interrupted("run stopped while waiting to retry", usage=billed) from None
            except Exception as err:  # a library or backend bug: recorded for this item, the batch goes on
                raise UnexpectedError(f"{type(err).__name__}: {err}", usage=billed) from err

    def _make_texts(self, plan: PlannedClass) -> _Done:
        def attempt(n: int):
            request = TextRequest(plan.name, plan.action, self.cfg.k, self.cfg.seed, plan.messages, attempt=n)
            with self._text_slots:
                result = self.text.generate(request)
            try:
                sentences = check_sentences(result.sentences, self.cfg.k, self.cfg.min_words, self.cfg.max_words)
                sentences = [redact(s) for s in sentences]  # a server that echoes the key: before any use
            except MalformedOutput as err:
                raise MalformedOutput(err.detail, usage=result.usage, request_id=result.request_id) from None
            return sentences, result.usage, result.request_id

        record = {"kind": "text", "class": plan.name, "key": plan.text_key, "backend": self.text.name,
                  "model": self.text.model, "prompt": plan.messages, "seed": self.cfg.seed, "k": self.cfg.k}
        try:
            done = self._with_retries(attempt)
        except ItemError as err:
            self._record_failure(record, err)
            raise
        path = self.cache.save_texts(plan.name, plan.text_key, done.value, {
            "backend": self.text.name, "model": self.text.model, "prompt": plan.messages, "seed": self.cfg.seed,
        })
        self._record_success(record, done, path)
        return done

    def _make_image(self, request: ImageRequest, key: str) -> _Done:
        def attempt(n: int):
            with self._image_slots:
                result = self.image.generate(replace(request, attempt=n))
            try:
                image = to_fixed_rgb(result.image, self.cfg.image_size)
            except MalformedOutput as err:
                raise MalformedOutput(err.detail, usage=result.usage, request_id=result.request_id) from None
            return image, result.usage, result.request_id

        record = {"kind": "image", "class": request.class_name, "index": request.index, "key": key,
                  "backend": self.image.name, "model": self.image.model, "prompt": request.prompt,
                  "sentence": request.sentence, "seed": request.seed, "size": self.cfg.image_size}
        try:
            done = self._with_retries(attempt)
        except ItemError as err:
            self._record_failure(record, err)
            raise
        path = self.cache.save_image(request.class_name, key, done.value)
        self._record_success(record, done, path)
        return replace(done, value=self.cache.relative(path))

    def _record_success(self, record: dict, done: _Done, path) -> None:
        usage = done.usage.as_dict()
        self._manifest.append({**record, "status": "ok", "path": self.cache.relative(path),
                               "request_id": done.request_id, "attempts": done.attempts, "usage": usage,
                               "cost_usd": usage["cost_usd"]})

    def _record_failure(self, record: dict, err: ItemError) -> None:
        if isinstance(err, Interrupted):
            return
        usage = err.usage.as_dict()
        self._manifest.append({**record, "status": err.reason, "error": err.detail, "request_id": err.request_id,
                               "attempts": err.attempts, "usage": usage, "cost_usd": usage["cost_usd"]})

    # -- the run -------------------------------------------------------------------------------------------

    def run(self, classes: list[str]) -> RunReport:
        start = time.perf_counter()
        k = self.cfg.k
        try:
            plan = self.plan(classes)
        except FatalBackendError as err:
            raise UserError(err.where, err.problem) from None
        report = RunReport(k, {p.name: ClassResult(p.name, k, images=[None] * k) for p in plan})
        self._stop.clear()
        local = ThreadPoolExecutor(1, thread_name_prefix="priors-local")
        threads = 2 * self.cfg.concurrency
        text_pool = ThreadPoolExecutor(threads, "priors-text") if self.text.remote else local
        image_pool = ThreadPoolExecutor(threads, "priors-image") if self.image.remote else local
        pending: dict[Future, tuple[str, PlannedClass, ImageRequest | None]] = {}

        def schedule_images(p: PlannedClass, texts: list[str]) -> None:
            for i, sentence in enumerate(texts):
                request = self.image_request(p.name, p.action, i, sentence)
                key = self.image_key(request)
                if self.cache.has_image(p.name, key):
                    report.classes[p.name].images[i] = self.cache.relative(self.cache.image_path(p.name, key))
                    report.images.cached += 1
                    self.progress.add_total(-1)
                else:
                    pending[image_pool.submit(self._make_image, request, key)] = ("image", p, request)

        # Every class counts k images until its texts tell which are cached.
        self.progress.start(sum(k + (p.texts is None) for p in plan))
        self._manifest = Manifest(self.cache.out / "manifest.jsonl")
        try:
            for p in plan:
                if p.texts is None:
                    pending[text_pool.submit(self._make_texts, p)] = ("text", p, None)
                else:
                    report.classes[p.name].texts = p.texts
                    report.classes[p.name].text_item = self.cache.text_item(p.name, p.text_key)
                    report.texts.cached += 1
                    schedule_images(p, p.texts)
            while pending:
                finished, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    kind, p, request = pending.pop(future)
                    self._collect(future, kind, p, request, report, schedule_images)
        except KeyboardInterrupt:
            report.interrupted = True
        except FatalBackendError as err:
            raise UserError(err.where, err.problem) from None
        finally:
            # Items in flight finish and are cached; nothing queued starts; retry waits end at once.
            self._stop.set()
            for pool in {text_pool, image_pool, local}:
                pool.shutdown(wait=True, cancel_futures=True)
            self._manifest.close()
            self.progress.stop()
        report.seconds = time.perf_counter() - start
        return report

    def _collect(self, future: Future, kind: str, p: PlannedClass, request: ImageRequest | None,
                 report: RunReport, schedule_images) -> None:
        result = report.classes[p.name]
        tally = report.texts if kind == "text" else report.images
        what = "texts" if kind == "text" else f"image {request.index + 1}"
        try:
            done = future.result()
        except ItemError as err:
            tally.failed += 1
            tally.usage = tally.usage + err.usage
            result.failures.append(Failure(what, err.reason, err.detail))
            self.progress.advance()
            if kind == "text":
                self.progress.add_total(-self.cfg.k)
            return
        tally.generated += 1
        tally.usage = tally.usage + done.usage
        self.progress.advance()
        if kind == "text":
            result.texts = done.value
            result.text_item = self.cache.text_item(p.name, p.text_key)
            schedule_images(p, done.value)
        else:
            result.images[request.index] = done.value


def _slots(limit: int | None):
    return threading.BoundedSemaphore(limit) if limit else contextlib.nullcontext()


def has_work(plan: list[PlannedClass]) -> bool:
    """Whether a run of this plan would make (and, with a paid backend, pay for) any text or image."""
    return any(p.texts is None or not all(p.images_cached or [False]) for p in plan)


def priors_entries(report: RunReport) -> dict[str, dict[str, list[str]]]:
    """The priors.json classes: exactly the complete classes of this run, in run order."""
    return {name: {"texts": list(result.texts), "images": list(result.images)}
            for name, result in report.classes.items() if result.complete}


def published_items(report: RunReport) -> list[str]:
    """The cached items (paths relative to the cache) of the complete classes: what priors.json stands on."""
    return [item for result in report.classes.values() if result.complete
            for item in (result.text_item, *result.images) if item]
