"""A person's walk through Puente in the browser: signing in at the login page, then only
clicking what is on the screen (the navigation bar, behind ☰ on a phone, buttons, links,
the user menu). Used by tests/e2e/test_walk.py.

What each role should see in the bar comes from the product's own NAV and role
permissions; what each page should say comes from the catalogues, and a Spanish walk
refuses a text the catalogue leaves in English."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from puente.accounts.models import Role
from puente.accounts.permissions import ROLE_PERMISSIONS, Perm
from puente.web import i18n
from puente.web.templating import NAV

SHOTS = os.environ.get("PUENTE_SCREENSHOTS")
_SAVED: set[str] = set()  # one picture per name and run: the first walk to reach the page
VIEWPORTS = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
BROWSER_LOCALES = {"en": "en-US", "es": "es-ES"}

# The problems that hide a page's main action from a person: outside the window once the
# page itself has scrolled to it, or cut off by a box that scrolls on its own (a panel the
# person would have to scroll inside to find the button). Returns [] when in plain view.
IN_PLAIN_VIEW_JS = """
(el) => {
  const name = (n) => n.tagName.toLowerCase() + (n.id ? '#' + n.id : '')
    + (n.className && typeof n.className === 'string'
       ? '.' + n.className.trim().split(/\\s+/).join('.') : '');
  const problems = [];
  let r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return [name(el) + ' has no size (hidden?)'];
  // The page's own scroll, as a person would scroll the page (never a panel inside it).
  if (r.top < 0 || r.bottom > window.innerHeight) {
    window.scrollBy(0, r.top - Math.max(0, (window.innerHeight - r.height) / 2));
    r = el.getBoundingClientRect();
  }
  if (r.top < -0.5 || r.left < -0.5 || r.bottom > window.innerHeight + 0.5
      || r.right > window.innerWidth + 0.5) {
    problems.push(name(el) + ' is outside the window even after scrolling the page: '
      + JSON.stringify({top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                        window: [window.innerWidth, window.innerHeight]}));
  }
  for (let a = el.parentElement; a && a !== document.body && a !== document.documentElement;
       a = a.parentElement) {
    const s = getComputedStyle(a);
    if (!/(auto|scroll|hidden|clip)/.test(s.overflowX + ' ' + s.overflowY)) continue;
    const b = a.getBoundingClientRect();
    if (r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5
        || r.left < b.left - 0.5 || r.right > b.right + 0.5) {
      problems.push(name(el) + ' is cut off by ' + name(a) + ' (overflow '
        + s.overflowX + '/' + s.overflowY + ', box ' + Math.round(b.top) + '-'
        + Math.round(b.bottom) + ', element ' + Math.round(r.top) + '-'
        + Math.round(r.bottom) + '): the person must scroll inside it');
    }
  }
  return problems;
}
"""

# A page's main action is drawn as a button (filled or framed, not underlined), so a person
# tells it from the links around it.
LOOKS_LIKE_A_BUTTON_JS = """
(el) => {
  const s = getComputedStyle(el);
  const filled = !['rgba(0, 0, 0, 0)', 'transparent'].includes(s.backgroundColor);
  const framed = parseFloat(s.borderTopWidth) > 0 && s.borderTopStyle !== 'none';
  return (filled || framed) && !s.textDecorationLine.includes('underline');
}
"""

# The form fields of a box that run past its right (or left) edge, inside its padding: a
# select is as wide as its longest option unless the page holds it.
FIELDS_PAST_THE_EDGE_JS = """
(box) => {
  const s = getComputedStyle(box);
  const b = box.getBoundingClientRect();
  const left = b.left + parseFloat(s.borderLeftWidth) + parseFloat(s.paddingLeft);
  const right = Math.min(b.right - parseFloat(s.borderRightWidth) - parseFloat(s.paddingRight),
                         window.innerWidth);
  return [...box.querySelectorAll('select, input, textarea')]
    .filter((el) => el.type !== 'hidden' && el.getClientRects().length)
    .map((el) => [el, el.getBoundingClientRect()])
    .filter(([, r]) => r.right > right + 0.5 || r.left < left - 0.5)
    .map(([el, r]) => (el.name || el.tagName.toLowerCase()) + ' spans ' + Math.round(r.left)
         + '-' + Math.round(r.right) + ' in a box of ' + Math.round(left) + '-' + Math.round(right));
}
"""

# Whether a box's content is wider than the box (cut off, or scrolling sideways).
CUT_ON_THE_RIGHT_JS = """
(box) => box.scrollWidth > box.clientWidth + 1
  || box.getBoundingClientRect().right > window.innerWidth + 0.5
"""


def tr(lang: str, msgid: str) -> str:
    """The catalogue's text for `msgid` in `lang` (the msgid itself when untranslated)."""
    return str(i18n.translations(lang).gettext(msgid))


def nav_for(role: Role) -> list[tuple[str, str]]:
    """(path, English label) of the links `role` must see, in the bar's order."""
    allowed = ROLE_PERMISSIONS[role]
    return [(path, label) for path, label, perm in NAV if Perm(perm) in allowed]


@dataclass
class Walk:
    """One person walking: their page, language and width, and what went wrong so far (the
    walk goes on after a problem it can walk past, so one run reports them all)."""

    page: Any
    role: Role
    lang: str
    width: str
    base_url: str
    problems: list[str] = field(default_factory=list)

    @property
    def phone(self) -> bool:
        return self.width == "phone"

    def text(self, msgid: str) -> str:
        """What the page should say for `msgid`; in Spanish, a msgid the catalogue leaves
        in English is a problem (the page would show English to a Spanish reader)."""
        said = tr(self.lang, msgid)
        if self.lang != "en" and said == msgid:
            self.problem(f"{msgid!r} has no {self.lang} translation in the catalogue")
        return said

    def problem(self, what: str) -> None:
        self.problems.append(f"[{self.role.value}, {self.lang}, {self.width}] {what}")

    def shot(self, name: str, locator: Any = None) -> None:
        """Save a screenshot for the docs when PUENTE_SCREENSHOTS names a folder."""
        if not SHOTS or name in _SAVED:
            return
        _SAVED.add(name)
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        path = str(Path(SHOTS) / f"{name}.png")
        if locator is not None:
            locator.screenshot(path=path)
        else:
            self.page.screenshot(path=path, full_page=False)

    def shot_name(self, page_name: str) -> str:
        """docs/screenshots names: English on a laptop plain, then -phone, then -es."""
        phone = "-phone" if self.phone else ""
        if page_name == "inbox-list" and self.phone:
            page_name, phone = "inbox-phone", ""
        return page_name + phone + ("-es" if self.lang == "es" else "")

    # --- what a person does ---------------------------------------------------------

    def sign_in(self, email: str, password: str) -> None:
        """The only address typed in a walk: the login page's."""
        page = self.page
        page.goto(self.base_url + "/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.wait_for_load_state()
        if page.locator("html").get_attribute("lang") != self.lang:
            self.choose_language()

    def choose_language(self) -> None:
        """The user menu's language choice, which saves at once and redraws the page."""
        page = self.page
        page.click("details.usermenu summary")
        with page.expect_navigation():
            page.select_option("details.usermenu select[name=language]", self.lang)
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == self.lang

    def open_nav(self) -> Any:
        """The main navigation, opened with ☰ on a phone; returns the nav."""
        page = self.page
        nav = page.locator("nav.mainnav")
        toggle = page.locator("label.nav-toggle-label")
        if self.phone:
            if not toggle.is_visible():
                raise AssertionError("no ☰ menu button on a phone")
            opened = page.locator("#nav-toggle").is_checked()
            if nav.is_visible() and not opened:
                self.problem("the navigation is not folded behind ☰ on a phone")
            elif not opened:
                toggle.click()
            if not nav.is_visible():
                raise AssertionError("☰ did not open the navigation (is it empty?)")
        else:
            if toggle.is_visible():
                self.problem("the ☰ menu button shows on a laptop")
            if not nav.is_visible():
                raise AssertionError("the navigation bar is not visible on a laptop")
        return nav

    def nav_labels(self) -> list[str]:
        nav = self.open_nav()
        links = nav.locator("a")
        return [
            links.nth(i).inner_text().strip()
            for i in range(links.count())
            if links.nth(i).is_visible()
        ]

    def click(self, locator: Any, where: str) -> None:
        """Click something that loads a page, and check the page is not an error."""
        page = self.page
        with page.expect_navigation() as navigation:
            locator.click()
        response = navigation.value
        page.wait_for_load_state()
        if response is None or response.status >= 400:
            status = response.status if response is not None else "no response"
            raise AssertionError(f"{where} answered {status}: {page.url}")
        if page.locator("[data-testid=error], .error-page").count():
            raise AssertionError(f"{where} shows an error page: {page.url}")

    def go(self, english_label: str) -> None:
        """Click a link of the navigation bar, by the label the walk's language gives it."""
        nav = self.open_nav()
        self.click(
            nav.get_by_role("link", name=tr(self.lang, english_label), exact=True),
            f"the {english_label} link",
        )

    def in_plain_view(self, locator: Any, what: str) -> None:
        """`locator` (the page's main action) is seen without scrolling inside a panel."""
        for _attempt in range(5):
            locator.first.wait_for(state="visible")
            found = locator.first.evaluate(IN_PLAIN_VIEW_JS)
            # "No size" can be an element the page just replaced with a fresh copy (the
            # inbox redraws its list once its live stream opens): look again.
            if not any("has no size" in f for f in found):
                break
        for problem in found:
            self.problem(f"{what}: {problem}")

    def fields_fit(self, locator: Any, what: str) -> None:
        """Every form field in `locator` fits its width."""
        for problem in locator.first.evaluate(FIELDS_PAST_THE_EDGE_JS):
            self.problem(f"{what}: {problem}")

    def not_cut(self, locator: Any, what: str) -> None:
        """`locator` shows all of its content across, without scrolling sideways."""
        if locator.first.evaluate(CUT_ON_THE_RIGHT_JS):
            self.problem(f"{what} is cut off on the right (it scrolls sideways)")

    def main_action(self, locator: Any, what: str) -> None:
        """The page's main action: in plain view, and drawn as a button."""
        self.in_plain_view(locator, what)
        if not locator.first.evaluate(LOOKS_LIKE_A_BUTTON_JS):
            self.problem(f"{what} looks like a plain link, not a button")

    def heading(self, msgid: str) -> None:
        """The page's heading is the catalogue's text in the walk's language."""
        expected = self.text(msgid)
        shown = self.page.locator("main h1").first.inner_text().strip()
        if shown != expected:
            self.problem(f"the heading of {self.page.url} says {shown!r}, not {expected!r}")

    def title(self, msgid: str) -> None:
        """For a page without a heading of its own (the inbox): the window's title."""
        expected = self.text(msgid)
        shown = self.page.title()
        if not shown.startswith(expected):
            self.problem(f"the title of {self.page.url} is {shown!r}, not {expected!r}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)
