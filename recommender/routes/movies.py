"""The catalog: GET /movies/search (title search), /movies/{movie_id}, /movies/{movie_id}/similar."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from core.title_search import MAX_QUERY_CHARS
from recommender import composition
from recommender.api_models import MovieResponse, MovieSearchResponse, RankedMovie, SimilarResponse
from recommender.routes.common import doc, hits_to_json, method_not_allowed, reject_unknown_query
from recommender.settings import MAX_K

router = APIGatewayRouter()

SEARCH = "/movies/search"
MOVIE = "/movies/<movie_id>"
SIMILAR = "/movies/<movie_id>/similar"


@router.get(
    SEARCH,
    summary="Find movies by title, as you type",
    description=(
        "Movies whose title holds every term of `q`, the last one as a prefix (`star w` finds Star Wars), most "
        "popular first. Terms are cut like OpenSearch's standard analyzer: Unicode words, lower case, accents "
        "kept. A `q` without letters or digits (blank) matches nothing. When the index cannot answer, the model "
        "bundle's catalog is searched (`fallback: bundle`)."
    ),
    tags=["movies"],
    responses={
        200: doc("Matching movies, most popular first", MovieSearchResponse),
        422: doc("`q` is missing, empty or too long, `limit` is out of range, or a parameter is unknown"),
        503: doc("The vector index or the model is unavailable"),
    },
)
def search_movies(
    q: Annotated[
        str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Words of the title; the last may be cut.")
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_K, description="How many movies to return")] = 10,
) -> MovieSearchResponse:
    reject_unknown_query(router, {"q", "limit"})
    container = composition.get_container()
    with container.tracing.span("## search"):
        result = container.service.search_movies(q, limit)
    return MovieSearchResponse(
        model_version=result.model_version,
        query=q,
        items=[
            MovieResponse(movie_id=m.movie_id, title=m.title, year=m.year, genres=list(m.genres),
                          popularity=m.popularity)
            for m in result.items
        ],
        cached=result.cached,
        fallback=result.fallback,  # type: ignore[arg-type]
    )


@router.get(
    MOVIE,
    summary="One movie of the catalog",
    tags=["movies"],
    responses={
        200: doc("The movie", MovieResponse),
        404: doc("No such movie"),
        422: doc("The movie id is not a positive integer"),
        503: doc("The vector index or the model is unavailable"),
    },
)
def get_movie(movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> MovieResponse:
    reject_unknown_query(router, set())
    movie = composition.get_container().service.movie(movie_id)
    return MovieResponse(
        movie_id=movie.movie_id, title=movie.title, year=movie.year, genres=list(movie.genres),
        popularity=movie.popularity,
    )


@router.get(
    SIMILAR,
    summary="Movies similar to one movie",
    description="Nearest movies by item vector (content and collaborative part; popularity left out).",
    tags=["movies"],
    responses={
        200: doc("Similar movies, most similar first", SimilarResponse),
        404: doc("No such movie"),
        422: doc("The movie id or k is invalid"),
        503: doc("The vector index or the model is unavailable"),
    },
)
def get_similar(
    movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many movies to return")] = 10,
) -> SimilarResponse:
    reject_unknown_query(router, {"k"})
    container = composition.get_container()
    with container.tracing.span("## similar"):
        result = container.service.similar(movie_id, k)
    m = result.movie
    return SimilarResponse(
        model_version=result.model_version,
        movie={"movie_id": m.movie_id, "title": m.title, "year": m.year, "genres": list(m.genres)},  # type: ignore[arg-type]
        items=[RankedMovie(**item) for item in hits_to_json(result.items)],
        cached=result.cached,
    )


for _path in (SEARCH, MOVIE, SIMILAR):
    method_not_allowed(router, _path, allowed=("GET",))
