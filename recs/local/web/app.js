// The try-it page: search titles, rate the movies you liked, see what the model recommends and why.
// Plain browser JavaScript, no build step. It only calls the public API (the same one the Lambda
// serves), so it works against `recs serve` (same origin) or a deployed API (URL and key in the
// settings, kept in localStorage). Everything shown is built with textContent: no HTML from data.
"use strict";

(() => {
  const GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
  ];
  const RECOMMENDATIONS = 12; // k
  const SUGGESTIONS = 8; // limit
  const SEARCH_DELAY_MS = 200; // debounce while typing
  const UPDATE_DELAY_MS = 150; // debounce of list / rating / filter changes
  const DEFAULT_RATING = 4;
  const SETTINGS_KEY = "recs.settings";

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };

  // -- settings --------------------------------------------------------------------------------
  function loadSettings() {
    try {
      const raw = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}");
      return { apiUrl: String(raw.apiUrl || ""), apiKey: String(raw.apiKey || "") };
    } catch {
      return { apiUrl: "", apiKey: "" };
    }
  }

  let settings = loadSettings();

  function apiBase() {
    const url = settings.apiUrl.trim();
    if (url) return url.replace(/\/+$/, "");
    if (location.protocol === "http:" || location.protocol === "https:") return location.origin;
    return "http://127.0.0.1:8080"; // the page opened as a file: `recs serve`'s default address
  }

  // -- the API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  function describeError(status, body) {
    if (body && typeof body.message === "string") {
      const fields = Array.isArray(body.errors) && body.errors.length
        ? " (" + body.errors.map((e) => `${e.field}: ${e.reason}`).join("; ") + ")"
        : "";
      return `${body.message}${fields}`;
    }
    if (status === 403) return "The API refused the request (403): check the API key in the settings.";
    if (status === 429) return "Too many requests (429): wait a moment and try again.";
    return `The API answered ${status}.`;
  }

  async function api(path, { method = "GET", body, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (settings.apiKey) headers["X-Api-Key"] = settings.apiKey;
    let response;
    try {
      response = await fetch(apiBase() + path, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(
        `Cannot reach the API at ${apiBase()}. Is it running (recs serve), and is the URL in the settings right?`, 0,
      );
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) throw new ApiError(describeError(response.status, data), response.status);
    if (data === null) throw new ApiError("The API answered with something that is not JSON.", response.status);
    return data;
  }

  // -- state -----------------------------------------------------------------------------------
  const chosen = []; // [{movie: {movie_id, title, year, genres}, rating}], oldest first
  const isChosen = (id) => chosen.some((c) => c.movie.movie_id === id);

  function label(movie) {
    return movie.year ? `${movie.title} (${movie.year})` : movie.title;
  }

  function announce(node, text) {
    node.textContent = text;
  }

  // -- health ----------------------------------------------------------------------------------
  async function checkHealth() {
    const node = $("health");
    node.classList.remove("bad");
    announce(node, `Connecting to ${apiBase()}…`);
    $("openapi-link").href = apiBase() + "/openapi.json";
    try {
      const health = await api("/health");
      const movies = health.index && health.index.info && health.index.info.movies;
      const parts = [`Model ${health.model_version}`];
      if (movies) parts.push(`${Number(movies).toLocaleString("en")} movies`);
      if (health.status !== "ok") parts.push(`status ${health.status}`);
      announce(node, parts.join(" · "));
    } catch (err) {
      node.classList.add("bad");
      announce(node, err.message);
    }
  }

  // -- search as you type (ARIA 1.2 combobox with a listbox popup) ------------------------------
  const input = $("search");
  const listbox = $("suggestions");
  const searchStatus = $("search-status");
  let suggestions = [];
  let active = -1;
  let searchTimer = 0;
  let searchSeq = 0;
  let searchAbort = null;

  function closeSuggestions() {
    listbox.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function setActive(index) {
    const options = listbox.querySelectorAll("[role=option]");
    if (!options.length) return;
    active = (index + options.length) % options.length;
    options.forEach((option, i) => option.setAttribute("aria-selected", String(i === active)));
    const option = options[active];
    input.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  }

  function renderSuggestions(query) {
    listbox.replaceChildren();
    suggestions.forEach((movie, i) => {
      const added = isChosen(movie.movie_id);
      const option = el(
        "li",
        { id: `suggestion-${movie.movie_id}`, role: "option", "aria-selected": "false", class: "option" },
        el("span", { class: "option-title", text: movie.title }),
        el("span", { class: "option-meta", text: [movie.year, movie.genres.join(", ")].filter(Boolean).join(" · ") }),
      );
      if (added) {
        option.setAttribute("aria-disabled", "true");
        option.append(el("span", { class: "option-added", text: "added" }));
      }
      option.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus in the input
      option.addEventListener("click", () => pick(i));
      listbox.append(option);
    });
    if (suggestions.length) {
      listbox.hidden = false;
      input.setAttribute("aria-expanded", "true");
      setActive(0);
      const n = suggestions.length;
      announce(searchStatus, `${n} ${n === 1 ? "movie matches" : "movies match"}; arrow keys to choose, Enter to add.`);
    } else {
      closeSuggestions();
      announce(searchStatus, `No title matches “${query}”.`);
    }
  }

  async function runSearch(query) {
    const seq = ++searchSeq;
    if (searchAbort) searchAbort.abort();
    searchAbort = new AbortController();
    searchStatus.classList.remove("bad");
    announce(searchStatus, "Searching…");
    try {
      const params = new URLSearchParams({ q: query, limit: String(SUGGESTIONS) });
      const data = await api(`/movies/search?${params}`, { signal: searchAbort.signal });
      if (seq !== searchSeq) return;
      suggestions = data.items;
      renderSuggestions(query);
    } catch (err) {
      if (err.name === "AbortError" || seq !== searchSeq) return;
      suggestions = [];
      closeSuggestions();
      searchStatus.classList.add("bad");
      announce(searchStatus, err.message);
    }
  }

  function onSearchInput() {
    clearTimeout(searchTimer);
    const query = input.value.trim();
    if (!query) {
      searchSeq++;
      if (searchAbort) searchAbort.abort();
      suggestions = [];
      closeSuggestions();
      announce(searchStatus, "");
      return;
    }
    searchTimer = setTimeout(() => runSearch(query), SEARCH_DELAY_MS);
  }

  function pick(index) {
    const movie = suggestions[index];
    if (!movie) return;
    if (isChosen(movie.movie_id)) {
      announce(searchStatus, `${label(movie)} is already in your list.`);
      return;
    }
    addMovie(movie);
    input.value = "";
    suggestions = [];
    closeSuggestions();
    input.focus();
  }

  input.addEventListener("input", onSearchInput);
  input.addEventListener("keydown", (event) => {
    const open = !listbox.hidden;
    switch (event.key) {
      case "ArrowDown":
        event.preventDefault();
        if (open) setActive(active + 1);
        else if (suggestions.length) renderSuggestions(input.value.trim());
        else if (input.value.trim()) runSearch(input.value.trim());
        break;
      case "ArrowUp":
        if (open) {
          event.preventDefault();
          setActive(active - 1);
        }
        break;
      case "Enter":
        if (open && active >= 0) {
          event.preventDefault();
          pick(active);
        }
        break;
      case "Escape":
        if (open) {
          event.preventDefault();
          closeSuggestions();
        } else if (input.value) {
          event.preventDefault();
          input.value = "";
          onSearchInput();
        }
        break;
      case "Tab":
        closeSuggestions();
        break;
      default:
        break;
    }
  });
  input.addEventListener("blur", () => setTimeout(closeSuggestions, 100));

  // -- the chosen movies -----------------------------------------------------------------------
  const chosenList = $("chosen");

  function stars(value) {
    return `${value.toFixed(1)} star${value === 1 ? "" : "s"}`;
  }

  function ratingControl(entry) {
    const { movie } = entry;
    const slider = el("input", {
      type: "range", min: "0.5", max: "5", step: "0.5", value: String(entry.rating),
      class: "rating-input", "aria-label": `Your rating of ${label(movie)}`, "aria-valuetext": stars(entry.rating),
    });
    const fill = el("span", { class: "stars", "aria-hidden": "true", text: "★★★★★" });
    const value = el("span", { class: "rating-value", "aria-hidden": "true", text: entry.rating.toFixed(1) });
    const wrap = el("span", { class: "rating" }, fill, slider);
    const show = () => {
      fill.style.setProperty("--fill", `${(entry.rating / 5) * 100}%`);
      value.textContent = entry.rating.toFixed(1);
      slider.setAttribute("aria-valuetext", stars(entry.rating));
    };
    const set = (rating) => {
      if (rating === entry.rating) return;
      entry.rating = rating;
      slider.value = String(rating);
      show();
      scheduleUpdate();
    };
    slider.addEventListener("input", () => set(Number(slider.value)));
    // A click or tap on the stars: the half star under the pointer (the slider itself is for keys).
    wrap.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      const box = wrap.getBoundingClientRect();
      const fraction = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
      set(Math.min(5, Math.max(0.5, Math.ceil(fraction * 10) / 2)));
      slider.focus();
    });
    show();
    return el("span", { class: "rating-row" }, wrap, value);
  }

  function renderChosen(focusAfterRemoval) {
    chosenList.replaceChildren();
    for (const entry of chosen) {
      const { movie } = entry;
      const remove = el("button", {
        type: "button", class: "remove", "aria-label": `Remove ${label(movie)}`, text: "×",
        onclick: () => removeMovie(movie.movie_id),
      });
      chosenList.append(
        el(
          "li",
          { class: "chosen-item", "data-movie-id": String(movie.movie_id) },
          el(
            "div",
            { class: "chosen-text" },
            el("span", { class: "chosen-title", text: movie.title }),
            el("span", { class: "chosen-meta", text: [movie.year, movie.genres.join(", ")].filter(Boolean).join(" · ") }),
          ),
          ratingControl(entry),
          remove,
        ),
      );
    }
    $("chosen-empty").hidden = chosen.length > 0;
    $("chosen-count").textContent = chosen.length ? `(${chosen.length})` : "";
    if (focusAfterRemoval !== undefined) {
      const buttons = chosenList.querySelectorAll("button.remove");
      (buttons[Math.min(focusAfterRemoval, buttons.length - 1)] || input).focus();
    }
  }

  function addMovie(movie) {
    chosen.push({ movie, rating: DEFAULT_RATING });
    renderChosen();
    announce(searchStatus, `Added ${label(movie)}, rated ${DEFAULT_RATING} stars. ${chosen.length} in your list.`);
    scheduleUpdate();
  }

  function removeMovie(id) {
    const index = chosen.findIndex((c) => c.movie.movie_id === id);
    if (index < 0) return;
    const [entry] = chosen.splice(index, 1);
    renderChosen(index);
    announce(searchStatus, `Removed ${label(entry.movie)}. ${chosen.length} in your list.`);
    scheduleUpdate();
  }

  // -- filters ---------------------------------------------------------------------------------
  const genreBoxes = GENRES.map((genre) => {
    const id = `genre-${genre.replace(/[^A-Za-z]/g, "").toLowerCase()}`;
    const box = el("input", { type: "checkbox", id, value: genre, onchange: () => scheduleUpdate() });
    $("genres").append(el("span", { class: "chip" }, box, el("label", { for: id, text: genre })));
    return box;
  });
  const yearMin = $("year-min");
  const yearMax = $("year-max");
  const yearError = $("year-error");

  function readYear(node) {
    const raw = node.value.trim();
    if (!raw) return { value: null };
    const year = Number(raw);
    if (!Number.isInteger(year) || year < 1800 || year > 2200) return { error: "Years go from 1800 to 2200." };
    return { value: year };
  }

  function readFilters() {
    const min = readYear(yearMin);
    const max = readYear(yearMax);
    let error = min.error || max.error || null;
    if (!error && min.value !== null && max.value !== null && min.value > max.value) {
      error = "The first year must not be after the second.";
    }
    yearError.hidden = !error;
    yearError.textContent = error || "";
    yearMin.setAttribute("aria-invalid", String(Boolean(min.error || (error && !max.error))));
    yearMax.setAttribute("aria-invalid", String(Boolean(max.error)));
    const filters = {};
    const genres = genreBoxes.filter((b) => b.checked).map((b) => b.value);
    if (genres.length) filters.genres_any = genres;
    if (min.value !== null) filters.year_min = min.value;
    if (max.value !== null) filters.year_max = max.value;
    const active = genres.length + (min.value !== null || max.value !== null ? 1 : 0);
    $("filters-count").textContent = active ? `(${active} on)` : "";
    return error ? null : filters;
  }

  // On a phone the filters start folded, so the recommendations come sooner while scrolling.
  if (!window.matchMedia("(min-width: 860px)").matches) $("filters").open = false;
  yearMin.addEventListener("input", () => scheduleUpdate());
  yearMax.addEventListener("input", () => scheduleUpdate());
  $("clear-filters").addEventListener("click", () => {
    genreBoxes.forEach((b) => { b.checked = false; });
    yearMin.value = "";
    yearMax.value = "";
    scheduleUpdate();
  });

  // -- recommendations -------------------------------------------------------------------------
  const recsList = $("recs");
  const recsState = $("recs-state");
  const recsSection = recsList.closest("section");
  let updateTimer = 0;
  let updateSeq = 0;
  let updateAbort = null;

  function scheduleUpdate() {
    clearTimeout(updateTimer);
    updateTimer = setTimeout(updateRecommendations, UPDATE_DELAY_MS);
  }

  function showError(message) {
    $("recs-error-text").textContent = message;
    $("recs-error").hidden = false;
  }

  function becauseLine(item) {
    const names = (item.because || [])
      .map((b) => chosen.find((c) => c.movie.movie_id === b.movie_id))
      .filter(Boolean)
      .slice(0, 2)
      .map((c) => c.movie.title);
    if (!names.length) return null;
    const line = el("p", { class: "because" }, "Because you liked ");
    names.forEach((name, i) => {
      if (i) line.append(" and ");
      line.append(el("strong", { text: name }));
    });
    return line;
  }

  function renderRecommendations(data) {
    const personal = data.strategy === "personalized";
    $("recs-heading").textContent = personal ? "Recommended for you" : "Popular movies";
    const notes = [];
    if (!chosen.length) notes.push("Add movies you liked to get recommendations made for you.");
    else if (!personal) notes.push("The model knows none of your movies yet: these are popular ones.");
    if (data.fallback) notes.push("The movie index is not answering, so these are popular movies from the model's catalog.");
    if (data.ignored_movie_ids && data.ignored_movie_ids.length) {
      const unknown = chosen.filter((c) => data.ignored_movie_ids.includes(c.movie.movie_id)).map((c) => c.movie.title);
      notes.push(`Not known to this model, so left out: ${unknown.join(", ")}.`);
    }
    $("recs-note").textContent = notes.join(" ");
    recsList.replaceChildren();
    data.items.forEach((item, rank) => {
      const meta = el("p", { class: "rec-meta" });
      if (item.year) meta.append(el("span", { class: "rec-year", text: String(item.year) }));
      for (const genre of item.genres) meta.append(el("span", { class: "tag", text: genre }));
      const score = personal
        ? el("span", { class: "score", title: "Inner product of your vector and the movie's", text: `score ${item.score.toFixed(2)}` })
        : el("span", { class: "score", title: "How many ratings the movie has", text: `popularity ${Math.round(item.score)}` });
      const add = el("button", {
        type: "button", class: "secondary add", text: isChosen(item.movie_id) ? "In your list" : "I liked it",
        "aria-label": `I liked ${label(item)}: add it to your movies`,
        onclick: () => { if (!isChosen(item.movie_id)) addMovie(item); },
      });
      if (isChosen(item.movie_id)) add.disabled = true;
      const card = el(
        "li",
        { class: "rec", "data-movie-id": String(item.movie_id) },
        el("div", { class: "rec-head" }, el("span", { class: "rank", text: String(rank + 1) }),
          el("h3", { class: "rec-title", text: item.title })),
        meta,
      );
      const because = becauseLine(item);
      if (because) card.append(because);
      card.append(el("div", { class: "rec-foot" }, add, score));
      recsList.append(card);
    });
    $("recs-empty").hidden = data.items.length > 0;
  }

  async function updateRecommendations() {
    const filters = readFilters();
    if (filters === null) {
      announce(recsState, "Fix the years to update the list.");
      return;
    }
    const seq = ++updateSeq;
    if (updateAbort) updateAbort.abort();
    updateAbort = new AbortController();
    recsSection.setAttribute("aria-busy", "true");
    recsSection.classList.add("loading");
    announce(recsState, "Updating…");
    const body = {
      history: chosen.map((c) => ({ movie_id: c.movie.movie_id, rating: c.rating })),
      k: RECOMMENDATIONS,
      exclude_seen: true,
      filters,
      explain: true,
    };
    try {
      const data = await api("/recommendations", { method: "POST", body, signal: updateAbort.signal });
      if (seq !== updateSeq) return;
      $("recs-error").hidden = true;
      renderRecommendations(data);
      const n = data.items.length;
      announce(recsState, `${n} ${n === 1 ? "movie" : "movies"}${data.cached ? " (cached)" : ""}`);
    } catch (err) {
      if (err.name === "AbortError" || seq !== updateSeq) return;
      showError(err.message);
      announce(recsState, "Not updated");
    } finally {
      if (seq === updateSeq) {
        recsSection.setAttribute("aria-busy", "false");
        recsSection.classList.remove("loading");
      }
    }
  }

  $("recs-retry").addEventListener("click", () => {
    checkHealth();
    updateRecommendations();
  });

  // -- settings form ---------------------------------------------------------------------------
  const urlField = $("api-url");
  const keyField = $("api-key");
  urlField.value = settings.apiUrl;
  keyField.value = settings.apiKey;
  if (settings.apiUrl) $("settings").open = true;

  $("settings-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = urlField.value.trim();
    if (url && !/^https?:\/\/[^/\s]+/i.test(url)) {
      urlField.setAttribute("aria-invalid", "true");
      announce($("health"), "The API URL must start with http:// or https://.");
      $("health").classList.add("bad");
      urlField.focus();
      return;
    }
    urlField.setAttribute("aria-invalid", "false");
    settings = { apiUrl: url, apiKey: keyField.value.trim() };
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
    checkHealth();
    updateRecommendations();
  });
  $("settings-reset").addEventListener("click", () => {
    localStorage.removeItem(SETTINGS_KEY);
    settings = { apiUrl: "", apiKey: "" };
    urlField.value = "";
    keyField.value = "";
    checkHealth();
    updateRecommendations();
  });

  // -- start -----------------------------------------------------------------------------------
  renderChosen();
  checkHealth();
  updateRecommendations();
})();
