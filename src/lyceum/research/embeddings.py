"""Optional embeddings for table search: BM25 finds shared words, embeddings find shared meaning.

An embedder is any callable ``texts -> vectors``. ``endpoint_embedder`` calls an OpenAI-compatible
``/embeddings`` endpoint (vLLM, Ollama, hosted APIs); tests and offline users can pass their own function.

    embed = endpoint_embedder("http://localhost:8000/v1", "bge-small")
    catalog.search("carbon dioxide concentration", embed=embed)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from lyceum.errors import UserError

Embedder = Callable[[list[str]], list[list[float]]]


def endpoint_embedder(base_url: str, model: str, api_key: str | None = None, *, batch: int = 64) -> Embedder:
    """An embedder backed by an OpenAI-compatible endpoint (one request per batch of texts)."""
    if not base_url or not model:
        raise UserError("embeddings need an endpoint and a model: pass --base-url and --embed-model")

    def embed(texts: list[str]) -> list[list[float]]:
        from openai import OpenAI, OpenAIError

        client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", max_retries=2)
        out: list[list[float]] = []
        try:
            for i in range(0, len(texts), batch):
                response = client.embeddings.create(model=model, input=texts[i : i + batch])
                out += [list(d.embedding) for d in sorted(response.data, key=lambda d: d.index)]
        except OpenAIError as e:
            raise UserError(f"the embeddings endpoint {base_url} failed for model '{model}': "
                            f"{str(e).splitlines()[0][:200]}") from e
        return out

    return embed


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def hybrid(bm25: list[float], similarity: list[float], weight: float = 0.5) -> list[float]:
    """Blend BM25 (scaled to the best score) with cosine similarity (clipped at 0); ``weight`` is the embedding share."""
    top = max(bm25, default=0.0) or 1.0
    return [(1 - weight) * b / top + weight * max(0.0, s) for b, s in zip(bm25, similarity)]
