"""POST /recommendations: a history in, ranked movies out (``RecommendationService.recommend``)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from recommender import composition
from recommender.answers import HistoryItem, RecommendationQuery
from recommender.api_models import LikedMovie, RecommendationRequest, RecommendationResponse, RecommendedMovie
from recommender.errors import IndexUnavailableError
from recommender.observability import logger
from recommender.ports import Filters
from recommender.routes.common import doc, hits_to_json, method_not_allowed, reject_unknown_query

router = APIGatewayRouter()

RECOMMENDATIONS = "/recommendations"


@router.post(
    RECOMMENDATIONS,
    summary="Recommend movies for a history",
    description=(
        "The history goes through the user tower and a k-NN search over the movie vectors; filters and "
        "(with exclude_seen) the seen movies are applied inside the search, so the list still has `k` "
        "items when that many qualify. An empty history gets popular movies under the same filters. "
        "History movie ids unknown to the model and the catalog are ignored and listed in "
        "`ignored_movie_ids`. Unknown fields are rejected. With `explain`, each item names the liked "
        "history movies most similar to it (`because`)."
    ),
    tags=["recommendations"],
    responses={
        200: doc("Ranked movies", RecommendationResponse),
        400: doc("The body is not JSON"),
        413: doc("The body is too large"),
        415: doc("The body is not application/json"),
        422: doc("A field is invalid, out of range or unknown; `errors` names it"),
        503: doc("The vector index or the model is unavailable"),
    },
)
def post_recommendations(body: RecommendationRequest) -> RecommendationResponse:
    reject_unknown_query(router, set())
    container = composition.get_container()
    query = RecommendationQuery(
        history=[HistoryItem(h.movie_id, h.rating, h.timestamp) for h in body.history],
        k=body.k,
        exclude_seen=body.exclude_seen,
        filters=Filters(
            genres_any=tuple(body.filters.genres_any),
            genres_none=tuple(body.filters.genres_none),
            year_min=body.filters.year_min,
            year_max=body.filters.year_max,
        ),
    )
    with container.tracing.span("## recommend"):
        result = container.service.recommend(query)
        container.tracing.annotate("cached", result.cached)  # annotations belong to a subsegment
    because: dict[int, list[tuple[int, float]]] | None = None
    if body.explain:
        because = {}
        if result.fallback is None:
            try:
                with container.tracing.span("## explain"):
                    because = container.service.explain(query.history, result.items)
            except IndexUnavailableError as exc:
                logger.warning("recommendations without explanations", extra={"reason": str(exc)})
    items = [
        RecommendedMovie(
            **item,
            because=None if because is None else [
                LikedMovie(movie_id=i, similarity=round(sim, 6)) for i, sim in because.get(item["movie_id"], [])
            ],
        )
        for item in hits_to_json(result.items)
    ]
    return RecommendationResponse(
        model_version=result.model_version,
        items=items,
        cached=result.cached,
        strategy=result.strategy,  # type: ignore[arg-type]
        fallback=result.fallback,  # type: ignore[arg-type]
        ignored_movie_ids=result.ignored_movie_ids,
        history_used=result.history_used,
    )


method_not_allowed(router, RECOMMENDATIONS, allowed=("POST",))
