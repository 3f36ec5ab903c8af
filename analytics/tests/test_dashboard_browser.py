"""The staff dashboard in a real headless browser: Debian's chromium, driven by Selenium.

gunicorn serves the project with its production settings (WhiteNoise serving
the output of a real ``collectstatic`` into a temporary STATIC_ROOT) against
the test database and the test Redis. The test logs in through the admin login
form, waits for the charts, compares every chart's data points with the data it
wrote, checks the canvases were drawn, saves test-artifacts/dashboard.png, and
checks that a non-staff user never gets the page.

Needs the Debian packages chromium and chromium-driver; .ci/run installs them.
Without them the tests are skipped with a message naming the packages (and fail
under CI=true, where a skip would hide a broken install).
"""

import datetime
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
import time_machine
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import Client
from django.utils import timezone
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from analytics.selectors import period_starts
from billing.services import credits_consume, credits_purchase
from billing.tests.factories import PlanFactory, SubscriptionFactory, paid_subscription_invoice
from orgs.tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_catalog")]

PROJECT_DIR = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_DIR / "test-artifacts"
GUNICORN = Path(sys.executable).with_name("gunicorn")
# Where Debian's chromium and chromium-driver packages put them, for a PATH that lacks them.
DEBIAN_LOCATIONS = os.pathsep.join(("/usr/bin", "/usr/lib/chromium"))
MISSING_BROWSER = (
    "headless browser test needs Debian's `chromium` and `chromium-driver` packages "
    "(apt-get install chromium chromium-driver); {missing} not found"
)
PASSWORD = "dashboard-browser-test-password"
WAIT_SECONDS = 20


def find_program(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path=DEBIAN_LOCATIONS)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser_binaries() -> tuple[str, str]:
    chromium = find_program("chromium", "chromium-browser")
    chromedriver = find_program("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", chromedriver)) if not path]
    if missing:
        message = MISSING_BROWSER.format(missing=" and ".join(missing))
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} (.ci/run should have installed them)")
        pytest.skip(message)
    return chromium, chromedriver


@pytest.fixture(scope="module")
def browser(browser_binaries, tmp_path_factory):
    chromium, chromedriver = browser_binaries
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def database_url() -> str:
    """The test database (pytest-django's NAME by now), as a URL for the server's settings."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "127.0.0.1", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{quote(db['NAME'], safe='')}"


def server_env(static_root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_", "TEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=os.environ["TEST_REDIS_URL"],
        STATIC_ROOT=str(static_root),
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="0",
        # No idle connections left open on the test database, which pytest-django drops at the end.
        CONN_MAX_AGE="0",
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(browser_binaries, django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn on a free loopback port, serving the test database; yields its base URL."""
    with django_db_blocker.unblock():
        env = server_env(tmp_path_factory.mktemp("static"))
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    env.update(BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", GUNICORN_THREADS="4", GUNICORN_ACCESS_LOG="")
    log = tmp_path_factory.mktemp("gunicorn") / "server.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base_url}/healthz", process, log)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL built here
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within 30 s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def page(browser, server):
    """The browser, with no cookies left from another test, and the server's base URL."""
    browser.delete_all_cookies()
    return browser, server


def user_with_password(**fields):
    """The server hashes with the production hashers, so the password is stored with PBKDF2, not the tests' MD5."""
    user = UserFactory(**fields)
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt())
    user.save(update_fields=["password"])
    return user


def at_noon(day: datetime.date):
    return time_machine.travel(datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC), tick=False)


@pytest.fixture
def platform():
    """Purchases, usage and subscription renewals on three days around today; subscriptions in three statuses.

    Returns what the charts must show: credits purchased and consumed per day,
    revenue in cents per (month, source), and the subscription counts.
    """
    today = timezone.now().date()
    buyers = [UserFactory() for _ in range(3)]
    plan = PlanFactory(code="browser-pro", price_minor=4900)
    renewing = SubscriptionFactory(plan=plan)
    SubscriptionFactory(plan=plan)
    SubscriptionFactory(plan=plan, status="past_due")
    SubscriptionFactory(plan=plan, status="trialing")

    purchased: dict[datetime.date, Decimal] = {}
    consumed: dict[datetime.date, Decimal] = {}
    revenue: dict[tuple[datetime.date, str], int] = {}
    plan_by_day = {
        today - datetime.timedelta(days=35): [(0, "120", "20")],
        today - datetime.timedelta(days=3): [(0, "200", "12.5"), (1, "300", "40")],
        today: [(2, "50", "7.25")],
    }
    for day, operations in plan_by_day.items():
        month = day.replace(day=1)
        with at_noon(day):
            for buyer, bought, used in operations:
                credits_purchase(user=buyers[buyer], credits=Decimal(bought))
                credits_consume(user=buyers[buyer], service="embedding", units=1, credits=Decimal(used))
                purchased[day] = purchased.get(day, Decimal(0)) + Decimal(bought)
                consumed[day] = consumed.get(day, Decimal(0)) + Decimal(used)
                revenue[month, "purchases"] = revenue.get((month, "purchases"), 0) + int(bought)  # a cent a credit
            if day != today:
                paid_subscription_invoice(renewing, amount_minor=4900)
                revenue[month, "subscriptions"] = revenue.get((month, "subscriptions"), 0) + 4900
    return {
        "today": today,
        "purchased": purchased,
        "consumed": consumed,
        "revenue": revenue,
        "subscriptions": {"Trialing": 1, "Active": 2, "Past due": 1, "Canceled": 0},
    }


def log_in(driver, base_url: str, username: str, next_path: str = "/admin/dashboard/") -> None:
    driver.get(f"{base_url}/admin/login/?next={next_path}")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form input[type=submit]").click()


READ_CHARTS = """
const out = {};
for (const [name, chart] of Object.entries(window.opsCharts)) {
  const canvas = chart.canvas;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
  out[name] = {
    type: chart.config.type,
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((dataset) => ({label: dataset.label, data: dataset.data})),
    width: canvas.clientWidth,
    height: canvas.clientHeight,
    painted: painted,
  };
}
return out;
"""


def test_staff_see_the_charts_with_the_data_points(page, platform):
    driver, base_url = page
    staff = user_with_password(is_staff=True, is_superuser=True)

    log_in(driver, base_url, staff.username)
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: d.current_url == f"{base_url}/admin/dashboard/")
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: d.execute_script("return Boolean(window.opsCharts)"))
    charts = driver.execute_script(READ_CHARTS)

    today = platform["today"]
    months = period_starts(interval="month", periods=12, today=today)
    revenue = charts["revenue"]
    assert revenue["type"] == "bar"
    assert revenue["labels"] == [month.strftime("%b %Y") for month in months]
    assert [dataset["label"] for dataset in revenue["datasets"]] == ["Subscriptions", "Credit purchases"]
    for dataset, source in zip(revenue["datasets"], ("subscriptions", "purchases"), strict=True):
        expected = [platform["revenue"].get((month, source), 0) / 100 for month in months]
        assert dataset["data"] == pytest.approx(expected), source
    assert sum(revenue["datasets"][1]["data"]) == pytest.approx((120 + 200 + 300 + 50) / 100)

    days = period_starts(interval="day", periods=30, today=today)
    credits = charts["credits"]
    assert credits["type"] == "line"
    assert credits["labels"] == [day.isoformat() for day in days]
    purchased, consumed = credits["datasets"]
    assert (purchased["label"], consumed["label"]) == ("Purchased", "Consumed")
    # The day 35 days back is outside the 30-day window.
    assert purchased["data"] == pytest.approx([float(platform["purchased"].get(day, 0)) for day in days])
    assert consumed["data"] == pytest.approx([float(platform["consumed"].get(day, 0)) for day in days])
    assert purchased["data"][-4:] == pytest.approx([500, 0, 0, 50])
    assert consumed["data"][-4:] == pytest.approx([52.5, 0, 0, 7.25])

    subscriptions = charts["subscriptions"]
    assert (
        dict(zip(subscriptions["labels"], subscriptions["datasets"][0]["data"], strict=True))
        == (platform["subscriptions"])
    )

    for name, chart in charts.items():
        assert chart["width"] > 200, name
        assert chart["height"] > 100, name
        assert chart["painted"] > 1000, f"{name}: the canvas is blank"
    for canvas_id in ("revenue-chart", "credits-chart", "subscriptions-chart"):
        size = driver.find_element(By.ID, canvas_id).size
        assert size["width"] > 0
        assert size["height"] > 0, canvas_id
    mrr = driver.find_element(By.CSS_SELECTOR, '[data-figure="mrr"] .ops-figure-value').text
    assert mrr == "98.00 USD"
    # The favicon too: a 404 for it would be a SEVERE entry.
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    save_full_page_screenshot(driver, ARTIFACTS / "dashboard.png")


def save_full_page_screenshot(driver, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 120)
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, 1000)
    assert path.stat().st_size > 10_000


def test_a_non_staff_user_is_refused(page):
    driver, base_url = page
    member = user_with_password()

    # The admin login form refuses a non-staff account outright...
    log_in(driver, base_url, member.username)
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".errornote"))
    assert driver.current_url.startswith(f"{base_url}/admin/login/")
    assert "staff account" in driver.find_element(By.CSS_SELECTOR, ".errornote").text

    # ...and a non-staff session from elsewhere is sent back to the admin login page.
    session = Client()
    session.force_login(member)
    driver.get(f"{base_url}/healthz")
    driver.add_cookie({"name": "sessionid", "value": session.cookies["sessionid"].value, "path": "/"})
    driver.get(f"{base_url}/admin/dashboard/")

    assert driver.current_url == f"{base_url}/admin/login/?next=/admin/dashboard/"
    assert f"You are authenticated as {member.username}" in driver.page_source
    assert driver.find_elements(By.ID, "revenue-chart") == []
    assert driver.execute_script("return typeof window.opsCharts") == "undefined"


def test_anonymous_visitors_are_sent_to_the_login_page(page):
    driver, base_url = page

    driver.get(f"{base_url}/admin/dashboard/")

    assert driver.current_url == f"{base_url}/admin/login/?next=/admin/dashboard/"
    assert driver.find_elements(By.ID, "id_username")
