"""The try-it page in headless Chromium against a real local API: search and pick, rate, see
recommendations and why, filter, remove, errors, keyboard only, a phone screen, another API's URL and key."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

from recs.local.server import LocalServer
from tests.web.conftest import DESKTOP, posted_bodies, start_server

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot.png"


def settled(page: Page) -> None:
    """Wait until the recommendations are not being updated."""
    expect(page.locator("section.results")).to_have_attribute("aria-busy", "false")


def sent(page: Page, bodies: list[dict[str, Any]], check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The last recommendation request once it passes ``check`` (changes are debounced), after its answer."""
    for _ in range(200):
        if bodies and check(bodies[-1]):
            settled(page)
            return bodies[-1]
        page.wait_for_timeout(50)
    raise AssertionError(f"no such request was sent; the last one: {bodies[-1] if bodies else None}")


def history(body: dict[str, Any]) -> list[tuple[int, float]]:
    return [(h["movie_id"], h["rating"]) for h in body["history"]]


def recommendations(page: Page) -> Locator:
    return page.locator("#recs > li")


def search_and_pick_with_keys(page: Page, text: str, title: str) -> None:
    box = page.get_by_role("combobox", name="Find a movie you liked")
    box.fill(text)
    option = page.get_by_role("option", name=re.compile(re.escape(title)))
    expect(option.first).to_be_visible()
    while page.locator("[role=option][aria-selected=true] .option-title").inner_text() != title:
        box.press("ArrowDown")
    box.press("Enter")
    expect(page.locator("#chosen .chosen-title", has_text=title)).to_have_count(1)


def chosen_titles(page: Page) -> list[str]:
    return page.locator("#chosen .chosen-title").all_inner_texts()


def test_pick_rate_see_why_filter_and_remove(page: Page) -> None:
    bodies = posted_bodies(page)
    page.goto("/")
    # GIVEN the page on a fresh start: popular movies and an empty list
    expect(page.locator("#health")).to_contain_text("Model movielens-demo-600")
    expect(page.get_by_role("heading", name="Popular movies")).to_be_visible()
    expect(page.locator("#chosen-empty")).to_be_visible()
    expect(recommendations(page)).to_have_count(12)

    # WHEN three movies are searched for and picked (keys, then the mouse)
    search_and_pick_with_keys(page, "toy sto", "Toy Story")
    page.get_by_role("combobox").fill("finding")
    page.get_by_role("option", name=re.compile("Finding Nemo")).click()
    search_and_pick_with_keys(page, "shrek", "Shrek")
    assert chosen_titles(page) == ["Toy Story", "Finding Nemo", "Shrek"]
    expect(page.locator("#chosen-count")).to_have_text("(3)")

    # AND rated: a key on the first slider, a click on the stars of the second
    page.get_by_role("slider", name="Your rating of Toy Story (1995)").press("ArrowRight")
    nemo_stars = page.locator("#chosen li", has_text="Finding Nemo").locator(".rating")
    box = nemo_stars.bounding_box()
    assert box is not None
    nemo_stars.click(position={"x": box["width"] * 0.55, "y": box["height"] / 2})  # the 3rd star's right half
    expect(page.get_by_role("slider", name="Your rating of Finding Nemo (2003)")).to_have_attribute(
        "aria-valuetext", "3.0 stars"
    )

    # THEN the recommendations are personal, leave out the chosen movies and say why
    last = sent(page, bodies, lambda b: history(b) == [(1, 4.5), (6377, 3.0), (4306, 4.0)])
    expect(page.get_by_role("heading", name="Recommended for you")).to_be_visible()
    expect(recommendations(page)).to_have_count(12)
    assert last["explain"] is True and last["k"] == 12
    titles = recommendations(page).locator(".rec-title").all_inner_texts()
    assert not set(titles) & {"Toy Story", "Finding Nemo", "Shrek"}
    because = recommendations(page).locator(".because").all_inner_texts()
    assert len(because) >= 6, because
    assert all(re.fullmatch(r"Because you liked (Toy Story|Finding Nemo|Shrek)( and (Toy Story|Finding Nemo|Shrek))?",
                            line) for line in because), because
    # animated movies in, animated movies out (the demo model is the mean of the liked movies' vectors)
    genres = recommendations(page).locator(".rec-meta").all_inner_texts()
    assert sum("Animation" in g for g in genres) >= 8, genres
    expect(page.locator(".rec .score").first).to_contain_text("score ")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # WHEN a genre filter is applied THEN every recommendation has that genre
    page.locator("#genres").get_by_text("Horror", exact=True).click()
    sent(page, bodies, lambda b: b["filters"] == {"genres_any": ["Horror"]})
    expect(page.locator("#filters-count")).to_have_text("(1 on)")
    expect(recommendations(page)).to_have_count(12)
    for meta in recommendations(page).locator(".rec-meta").all():
        expect(meta.locator(".tag", has_text="Horror")).to_have_count(1)

    # WHEN a movie is removed THEN the list and the next request forget it
    page.get_by_role("button", name="Remove Shrek (2001)").click()
    assert chosen_titles(page) == ["Toy Story", "Finding Nemo"]
    expect(page.get_by_role("button", name="Remove Finding Nemo (2003)")).to_be_focused()
    sent(page, bodies, lambda b: [h["movie_id"] for h in b["history"]] == [1, 6377])
    expect(recommendations(page).locator(".because", has_text="Shrek")).to_have_count(0)


def test_an_error_message_when_the_api_stops(
    browser: Browser, served_process: tuple[subprocess.Popen[str], str]
) -> None:
    # GIVEN the page served by `recs serve` (the address it prints), with recommendations
    proc, url = served_process
    page = browser.new_page(viewport=DESKTOP)
    page.goto(url)
    search_and_pick_with_keys(page, "matrix", "Matrix, The")
    settled(page)
    expect(page.get_by_role("heading", name="Recommended for you")).to_be_visible()
    # WHEN the API stops and the list changes
    proc.terminate()
    proc.wait(timeout=30)
    page.get_by_role("slider", name=re.compile("Your rating of Matrix")).press("ArrowLeft")
    # THEN the page says so, keeps the last answer, and search says so too
    alert = page.locator("#recs-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Cannot reach the API at http://127.0.0.1:")
    expect(page.locator("#recs-state")).to_have_text("Not updated")
    expect(recommendations(page)).to_have_count(12)
    page.get_by_role("combobox").fill("alien")
    expect(page.locator("#search-status")).to_contain_text("Cannot reach the API")
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    page.close()


def test_api_errors_and_empty_states_are_shown(page: Page) -> None:
    page.goto("/")
    settled(page)
    # a year range nothing matches: an empty state, not an error
    page.get_by_role("spinbutton", name="from", exact=True).fill("1800")
    page.get_by_role("spinbutton", name="to", exact=True).fill("1801")
    expect(page.locator("#recs-empty")).to_be_visible()
    expect(recommendations(page)).to_have_count(0)
    # years in the wrong order: said next to the fields, nothing sent
    page.get_by_role("spinbutton", name="from", exact=True).fill("2000")
    page.get_by_role("spinbutton", name="to", exact=True).fill("1990")
    expect(page.locator("#year-error")).to_have_text("The first year must not be after the second.")
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator("#year-error")).to_be_hidden()
    expect(recommendations(page)).to_have_count(12)
    # a search nothing matches
    page.get_by_role("combobox").fill("qwertyuiop")
    expect(page.locator("#search-status")).to_have_text("No title matches “qwertyuiop”.")
    expect(page.get_by_role("listbox")).to_be_hidden()


def test_keyboard_only(page: Page) -> None:
    page.goto("/")
    settled(page)
    page.keyboard.press("Tab")  # the skip link
    expect(page.get_by_role("link", name="Skip to the recommendations")).to_be_focused()
    page.get_by_role("combobox").focus()
    page.keyboard.type("alien")
    combo = page.get_by_role("combobox")
    expect(combo).to_have_attribute("aria-expanded", "true")
    first = combo.get_attribute("aria-activedescendant")
    page.keyboard.press("ArrowDown")
    second = combo.get_attribute("aria-activedescendant")
    assert first and second and first != second
    page.keyboard.press("ArrowUp")
    expect(combo).to_have_attribute("aria-activedescendant", first)
    page.keyboard.press("Escape")
    expect(combo).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowDown")  # opens again
    expect(combo).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Enter")
    expect(page.locator("#chosen li")).to_have_count(1)
    expect(combo).to_be_focused()
    expect(combo).to_have_value("")
    # Tab reaches the rating, arrows change it, Tab reaches the remove button, Enter removes
    page.keyboard.press("Tab")
    slider = page.get_by_role("slider")
    expect(slider).to_be_focused()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(slider).to_have_attribute("aria-valuetext", "3.0 stars")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=re.compile("^Remove "))).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#chosen li")).to_have_count(0)
    expect(combo).to_be_focused()


def test_reads_on_a_phone(browser: Browser, server: LocalServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=server.url, is_mobile=True,
                                  has_touch=True)
    try:
        page = context.new_page()
        page.goto("/")
        settled(page)
        expect(recommendations(page)).to_have_count(12)
        # one column, nothing wider than the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        search = page.get_by_role("combobox").bounding_box()
        results = page.locator("section.results").bounding_box()
        assert search and results and results["y"] > search["y"]
        assert results["width"] > 300
        # the filters start folded (the recommendations come sooner) and open with a tap
        expect(page.get_by_role("checkbox", name="Drama")).to_be_hidden()
        page.get_by_text("Filters", exact=True).tap()
        expect(page.get_by_role("checkbox", name="Drama")).to_be_attached()
        expect(page.locator("#genres").get_by_text("Drama", exact=True)).to_be_visible()
        page.get_by_role("combobox").fill("up")
        expect(page.get_by_role("listbox")).to_be_visible()
        listbox = page.get_by_role("listbox").bounding_box()
        assert listbox and listbox["x"] >= 0 and listbox["x"] + listbox["width"] <= 390
    finally:
        context.close()


def test_the_page_can_use_another_api_with_a_key(
    page: Page, movielens_bundle: Path, tmp_path: Path, server: LocalServer
) -> None:
    # GIVEN a second API on another origin (another port): cross-origin calls need CORS
    other = start_server(movielens_bundle, tmp_path / "other-store")
    keys: list[str | None] = []
    page.on("request", lambda r: keys.append(r.headers.get("x-api-key")) if other.url in r.url else None)
    try:
        page.goto("/")
        settled(page)
        # WHEN its URL and a key are saved in the settings
        page.get_by_text("API settings").click()
        page.get_by_label("API URL").fill(other.url + "/")
        page.get_by_label("API key").fill("secret-key")
        page.get_by_role("button", name="Save and reconnect").click()
        # THEN the page talks to it, with the key, through CORS preflights
        expect(page.locator("#health")).to_contain_text("Model movielens-demo-600")
        search_and_pick_with_keys(page, "heat", "Heat")
        settled(page)
        expect(page.get_by_role("heading", name="Recommended for you")).to_be_visible()
        assert keys and all(k == "secret-key" for k in keys), keys
        # AND the settings survive a reload (localStorage)
        page.reload()
        expect(page.get_by_label("API URL")).to_have_value(other.url + "/")
        expect(page.get_by_label("API key")).to_have_value("secret-key")
        # AND a wrong URL is an error, not a silent failure
        page.get_by_label("API URL").fill("ftp://nowhere")
        page.get_by_role("button", name="Save and reconnect").click()
        expect(page.locator("#health")).to_have_text("The API URL must start with http:// or https://.")
    finally:
        other.shutdown()


def test_the_page_is_served_with_its_security_headers(page: Page, server: LocalServer) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    headers = response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        asset = page.request.get(server.url + path)
        assert asset.status == 200 and asset.headers["content-type"].startswith(kind)
    assert page.request.get(server.url + "/nope.js").status == 404
    assert DESKTOP["width"] == 1280
