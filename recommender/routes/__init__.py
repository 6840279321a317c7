"""The API's routes, one Powertools router per resource, included by ``recommender.handler``.

- ``recommendations``: POST /recommendations
- ``movies``: GET /movies/search, /movies/{movie_id}, /movies/{movie_id}/similar
- ``operations``: GET /health, /openapi.json

Each module declares its paths once and answers the other methods on them 405 (``common``).
"""
