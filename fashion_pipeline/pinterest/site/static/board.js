// Infinite scroll of the embedded Pinterest-like site.
// The board's first pins come in the HTML; the rest are fetched page by page from the feed
// resource as the reader nears the bottom. When the board's bookmark is "-end-", a
// recommendations heading (its text set per board by the server) is inserted after the board's
// container, and an endless feed of other pins follows, as on Pinterest.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("board-config").textContent);
  const boardFeed = document.querySelector('[data-test-id="board-feed"]');
  const state = { phase: "board", bookmark: config.bookmark, loading: false, failures: 0, pages: 0 };
  window.__feedState = state;  // for debugging in the browser console
  let moreFeed = null;

  function pinElement(pin) {
    const sizes = pin.images;
    const container = document.createElement("div");
    container.className = "pin";
    container.setAttribute("data-test-id", "pin");
    container.setAttribute("data-pin-id", pin.id);
    const link = document.createElement("a");
    link.setAttribute("href", "/pin/" + pin.id + "/");
    link.setAttribute("aria-label", pin.title);
    const img = document.createElement("img");
    img.setAttribute("alt", pin.title);
    img.setAttribute("loading", "lazy");
    img.setAttribute("decoding", "async");
    img.setAttribute("width", sizes["236x"].width);
    img.setAttribute("height", sizes["236x"].height);
    img.setAttribute("srcset", sizes["236x"].url + " 1x, " + sizes["474x"].url + " 2x, " + sizes["736x"].url + " 3x, "
      + sizes.orig.url + " 4x");
    img.setAttribute("src", sizes["236x"].url);
    link.appendChild(img);
    if (pin.videos) {
      const video = document.createElement("video");
      video.setAttribute("preload", "none");
      video.muted = true;
      video.setAttribute("src", pin.videos.video_list.V_720P.url);
      link.appendChild(video);
    }
    container.appendChild(link);
    return container;
  }

  function startMoreIdeas() {
    const header = document.createElement("div");
    header.className = "more-ideas-header";
    const title = document.createElement("h2");
    title.textContent = config.recommendations_heading;
    header.appendChild(title);
    moreFeed = document.createElement("div");
    moreFeed.setAttribute("data-test-id", "more-ideas-feed");
    moreFeed.className = "feed";
    boardFeed.after(header, moreFeed);
    document.body.setAttribute("data-board-complete", "true");
    state.phase = "more";
    state.bookmark = config.more_bookmark;
  }

  function nearBottom() {
    const remaining = document.documentElement.scrollHeight - (window.scrollY + window.innerHeight);
    return remaining < config.prefetch_px;
  }

  async function loadNextPage() {
    if (state.loading) return;
    state.loading = true;
    try {
      if (state.phase === "board" && state.bookmark === "-end-") {
        startMoreIdeas();
      }
      const resource = state.phase === "board" ? config.board_resource : config.more_resource;
      const url = resource + "?board=" + encodeURIComponent(config.board) + "&bookmark=" + encodeURIComponent(state.bookmark);
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error("feed answered " + response.status);
      const body = await response.json();
      const target = state.phase === "board" ? boardFeed : moreFeed;
      const fragment = document.createDocumentFragment();
      for (const pin of body.resource_response.data) fragment.appendChild(pinElement(pin));
      target.appendChild(fragment);
      state.bookmark = body.resource_response.bookmark;
      state.failures = 0;
      state.pages += 1;
    } catch (error) {
      state.failures += 1;
      console.warn("feed page failed", error);
    } finally {
      state.loading = false;
      // Back off after failures; otherwise keep filling while the bottom is in reach.
      const delay = state.failures ? Math.min(8000, 500 * 2 ** state.failures) : 50;
      setTimeout(maybeLoad, delay);
    }
  }

  function maybeLoad() {
    if (nearBottom()) loadNextPage();
  }

  window.addEventListener("scroll", maybeLoad, { passive: true });
  window.addEventListener("resize", maybeLoad);
  maybeLoad();
})();
