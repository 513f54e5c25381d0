"""The sandbox's ticker universe in Polygon ``/v3/reference/tickers`` format.

It always opens with the fixed list of real liquid names below (so watchlists and demos work for
every seed), then fills up to ``n`` with unique synthetic 1-5 letter symbols.  A few synthetic
names are delisted (their bars stop the day before), one is listed twice (an older record with
another CIK), as the real API does.  A profile (``kapman.sandbox.profiles``) can add the rougher
shapes of the real reference data: class-suffix tickers beside their namesakes, ETV and ETS
types, records without identifiers, whole-second timestamps.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from kapman.sandbox.profiles import TIDY, Profile

# symbol | name | type | primary exchange (MIC) | price near the default end date (Dec 2025)
_REAL = """
AAPL|Apple Inc.|CS|XNAS|272
MSFT|Microsoft Corp|CS|XNAS|480
NVDA|Nvidia Corp|CS|XNAS|180
ORCL|Oracle Corp|CS|XNYS|190
AMZN|Amazon.com Inc|CS|XNAS|225
GOOGL|Alphabet Inc. Class A Common Stock|CS|XNAS|305
GOOG|Alphabet Inc. Class C Capital Stock|CS|XNAS|306
META|Meta Platforms, Inc. Class A Common Stock|CS|XNAS|660
TSLA|Tesla, Inc. Common Stock|CS|XNAS|480
SPY|SPDR S&P 500 ETF Trust|ETF|ARCX|680
QQQ|Invesco QQQ Trust, Series 1|ETF|XNAS|615
IWM|iShares Russell 2000 ETF|ETF|ARCX|250
DIA|SPDR Dow Jones Industrial Average ETF Trust|ETF|ARCX|480
XLF|Financial Select Sector SPDR Fund|ETF|ARCX|54
XLK|Technology Select Sector SPDR Fund|ETF|ARCX|290
XLE|Energy Select Sector SPDR Fund|ETF|ARCX|90
XLV|Health Care Select Sector SPDR Fund|ETF|ARCX|155
XLY|Consumer Discretionary Select Sector SPDR Fund|ETF|ARCX|235
XLP|Consumer Staples Select Sector SPDR Fund|ETF|ARCX|78
XLI|Industrial Select Sector SPDR Fund|ETF|ARCX|155
XLU|Utilities Select Sector SPDR Fund|ETF|ARCX|85
XLB|Materials Select Sector SPDR Fund|ETF|ARCX|90
XLRE|Real Estate Select Sector SPDR Fund|ETF|ARCX|41
XLC|Communication Services Select Sector SPDR Fund|ETF|ARCX|115
SMH|VanEck Semiconductor ETF|ETF|XNAS|350
SOXX|iShares Semiconductor ETF|ETF|XNAS|300
GLD|SPDR Gold Shares|ETF|ARCX|400
SLV|iShares Silver Trust|ETF|ARCX|60
USO|United States Oil Fund, LP|ETF|ARCX|70
TLT|iShares 20+ Year Treasury Bond ETF|ETF|XNAS|88
HYG|iShares iBoxx $ High Yield Corporate Bond ETF|ETF|ARCX|80
LQD|iShares iBoxx $ Investment Grade Corporate Bond ETF|ETF|ARCX|110
EEM|iShares MSCI Emerging Markets ETF|ETF|ARCX|55
EFA|iShares MSCI EAFE ETF|ETF|ARCX|95
VTI|Vanguard Total Stock Market ETF|ETF|ARCX|335
VOO|Vanguard S&P 500 ETF|ETF|ARCX|625
IVV|iShares Core S&P 500 ETF|ETF|ARCX|685
ARKK|ARK Innovation ETF|ETF|ARCX|78
KRE|SPDR S&P Regional Banking ETF|ETF|ARCX|62
XBI|SPDR S&P Biotech ETF|ETF|ARCX|115
GDX|VanEck Gold Miners ETF|ETF|ARCX|80
TQQQ|ProShares UltraPro QQQ|ETF|XNAS|55
AVGO|Broadcom Inc. Common Stock|CS|XNAS|340
AMD|Advanced Micro Devices|CS|XNAS|210
NFLX|Netflix Inc|CS|XNAS|94
ADBE|Adobe Inc.|CS|XNAS|350
CRM|Salesforce, Inc.|CS|XNYS|260
INTC|Intel Corp|CS|XNAS|37
CSCO|Cisco Systems, Inc.|CS|XNAS|78
QCOM|Qualcomm Inc|CS|XNAS|175
TXN|Texas Instruments Incorporated|CS|XNAS|175
MU|Micron Technology, Inc.|CS|XNAS|250
AMAT|Applied Materials, Inc.|CS|XNAS|260
LRCX|Lam Research Corporation|CS|XNAS|160
KLAC|KLA Corporation|CS|XNAS|1200
MRVL|Marvell Technology, Inc.|CS|XNAS|88
ADI|Analog Devices, Inc.|CS|XNAS|270
ARM|Arm Holdings plc American Depositary Shares|ADRC|XNAS|135
TSM|Taiwan Semiconductor Manufacturing Co., Ltd.|ADRC|XNYS|290
ASML|ASML Holding N.V. New York Registry Shares|ADRC|XNAS|1050
IBM|International Business Machines|CS|XNYS|305
NOW|ServiceNow, Inc.|CS|XNYS|850
INTU|Intuit Inc|CS|XNAS|660
PANW|Palo Alto Networks, Inc.|CS|XNAS|190
CRWD|CrowdStrike Holdings, Inc. Class A Common Stock|CS|XNAS|480
SNOW|Snowflake Inc.|CS|XNYS|220
PLTR|Palantir Technologies Inc. Class A Common Stock|CS|XNAS|190
UBER|Uber Technologies, Inc.|CS|XNYS|82
SHOP|Shopify Inc. Class A Subordinate Voting Shares|CS|XNAS|160
PYPL|PayPal Holdings, Inc.|CS|XNAS|62
XYZ|Block, Inc. Class A Common Stock|CS|XNYS|65
COIN|Coinbase Global, Inc. Class A Common Stock|CS|XNAS|260
HOOD|Robinhood Markets, Inc. Class A Common Stock|CS|XNAS|125
DELL|Dell Technologies Inc. Class C Common Stock|CS|XNYS|130
SMCI|Super Micro Computer, Inc.|CS|XNAS|33
ANET|Arista Networks, Inc.|CS|XNYS|130
DDOG|Datadog, Inc. Class A Common Stock|CS|XNAS|150
NET|Cloudflare, Inc. Class A Common Stock|CS|XNYS|200
ZS|Zscaler, Inc.|CS|XNAS|250
WDAY|Workday, Inc. Class A Common Stock|CS|XNAS|215
TEAM|Atlassian Corporation Class A Common Stock|CS|XNAS|155
ABNB|Airbnb, Inc. Class A Common Stock|CS|XNAS|120
DASH|DoorDash, Inc. Class A Common Stock|CS|XNAS|220
SPOT|Spotify Technology S.A.|CS|XNYS|590
MSTR|Strategy Inc Class A Common Stock|CS|XNAS|170
APP|AppLovin Corporation Class A Common Stock|CS|XNAS|700
RBLX|Roblox Corporation Class A Common Stock|CS|XNYS|80
JPM|JPMorgan Chase & Co.|CS|XNYS|315
BAC|Bank of America Corporation|CS|XNYS|54
WFC|Wells Fargo & Company|CS|XNYS|90
C|Citigroup Inc.|CS|XNYS|110
GS|Goldman Sachs Group, Inc.|CS|XNYS|870
MS|Morgan Stanley|CS|XNYS|170
SCHW|Charles Schwab Corporation|CS|XNYS|95
BLK|BlackRock, Inc.|CS|XNYS|1060
AXP|American Express Company|CS|XNYS|370
V|Visa Inc.|CS|XNYS|335
MA|Mastercard Incorporated|CS|XNYS|560
COF|Capital One Financial Corp.|CS|XNYS|230
USB|U.S. Bancorp|CS|XNYS|52
PNC|PNC Financial Services Group, Inc.|CS|XNYS|200
SPGI|S&P Global Inc.|CS|XNYS|500
CME|CME Group Inc. Class A Common Stock|CS|XNAS|275
PGR|Progressive Corporation|CS|XNYS|230
UNH|UnitedHealth Group Incorporated|CS|XNYS|330
JNJ|Johnson & Johnson|CS|XNYS|205
LLY|Eli Lilly and Company|CS|XNYS|1050
PFE|Pfizer Inc.|CS|XNYS|26
MRK|Merck & Co., Inc.|CS|XNYS|100
ABBV|AbbVie Inc.|CS|XNYS|225
TMO|Thermo Fisher Scientific Inc.|CS|XNYS|580
ABT|Abbott Laboratories|CS|XNYS|128
AMGN|Amgen Inc.|CS|XNAS|330
GILD|Gilead Sciences, Inc.|CS|XNAS|120
BMY|Bristol-Myers Squibb Company|CS|XNYS|50
CVS|CVS Health Corporation|CS|XNYS|80
ISRG|Intuitive Surgical, Inc.|CS|XNAS|560
VRTX|Vertex Pharmaceuticals Incorporated|CS|XNAS|450
NVO|Novo Nordisk A/S American Depositary Shares|ADRC|XNYS|48
WMT|Walmart Inc.|CS|XNAS|115
COST|Costco Wholesale Corp|CS|XNAS|880
HD|Home Depot, Inc.|CS|XNYS|350
LOW|Lowe's Companies, Inc.|CS|XNYS|245
TGT|Target Corporation|CS|XNYS|95
MCD|McDonald's Corporation|CS|XNYS|310
SBUX|Starbucks Corporation|CS|XNAS|85
NKE|Nike, Inc.|CS|XNYS|65
KO|Coca-Cola Company|CS|XNYS|70
PEP|PepsiCo, Inc.|CS|XNAS|148
PG|Procter & Gamble Company|CS|XNYS|148
DIS|Walt Disney Company|CS|XNYS|112
CMG|Chipotle Mexican Grill, Inc.|CS|XNYS|36
BKNG|Booking Holdings Inc.|CS|XNAS|5300
F|Ford Motor Company|CS|XNYS|13.5
GM|General Motors Company|CS|XNYS|80
XOM|Exxon Mobil Corporation|CS|XNYS|118
CVX|Chevron Corporation|CS|XNYS|150
COP|ConocoPhillips|CS|XNYS|92
OXY|Occidental Petroleum Corporation|CS|XNYS|42
SLB|SLB N.V.|CS|XNYS|38
BA|Boeing Company|CS|XNYS|205
CAT|Caterpillar, Inc.|CS|XNYS|590
DE|Deere & Company|CS|XNYS|480
GE|GE Aerospace|CS|XNYS|300
HON|Honeywell International Inc.|CS|XNAS|195
LMT|Lockheed Martin Corporation|CS|XNYS|460
RTX|RTX Corporation|CS|XNYS|175
UPS|United Parcel Service, Inc. Class B Common Stock|CS|XNYS|98
FDX|FedEx Corporation|CS|XNYS|280
DAL|Delta Air Lines, Inc.|CS|XNYS|68
CCL|Carnival Corporation|CS|XNYS|27
T|AT&T Inc.|CS|XNYS|25
VZ|Verizon Communications Inc.|CS|XNYS|40
TMUS|T-Mobile US, Inc.|CS|XNAS|200
CMCSA|Comcast Corporation Class A Common Stock|CS|XNAS|29
NEE|NextEra Energy, Inc.|CS|XNYS|82
BABA|Alibaba Group Holding Limited American Depositary Shares|ADRC|XNYS|150
PDD|PDD Holdings Inc. American Depositary Shares|ADRC|XNAS|120
NIO|NIO Inc. American Depositary Shares|ADRC|XNYS|5.2
RIVN|Rivian Automotive, Inc. Class A Common Stock|CS|XNAS|17
SOFI|SoFi Technologies, Inc.|CS|XNAS|27
RKLB|Rocket Lab Corporation|CS|XNAS|55
MARA|MARA Holdings, Inc.|CS|XNAS|12
GME|GameStop Corp.|CS|XNYS|23
ROKU|Roku, Inc. Class A Common Stock|CS|XNAS|105
SNAP|Snap Inc. Class A Common Stock|CS|XNYS|8
SQQQ|ProShares UltraPro Short QQQ|ETF|XNAS|14
UVXY|ProShares Ultra VIX Short-Term Futures ETF|ETF|BATS|35
VXX|iPath Series B S&P 500 VIX Short-Term Futures ETN|ETN|BATS|30
"""


@dataclass(frozen=True)
class RealName:
    symbol: str
    name: str
    type: str
    exchange: str
    price: float


def _names(table: str) -> tuple[RealName, ...]:
    rows = (line.split("|") for line in table.strip().splitlines())
    return tuple(RealName(s, n, t, x, float(p)) for s, n, t, x, p in rows)


REAL_NAMES: tuple[RealName, ...] = _names(_REAL)
#: Class-suffix tickers beside their upper-case namesakes (CQS: a lower-case ``p`` marks a preferred):
#: AAp is not Advance Auto Parts, TpC is an AT&T preferred, not Tutor Perini.
CLASS_SUFFIX_NAMES: tuple[RealName, ...] = _names("""
AAP|Advance Auto Parts, Inc.|CS|XNYS|62
AAp|Alcoa Corporation $3.75 Cumulative Preferred Stock|PFD|XASE|72
TPC|Tutor Perini Corporation|CS|XNYS|65
TpC|AT&T Inc. 4.750% Depositary Shares, Series C|PFD|XNYS|19.5
""")
#: Single-security ETFs (type ETS in the live type list).
SINGLE_SECURITY_ETFS: tuple[RealName, ...] = _names("""
NVDL|GraniteShares 2x Long NVDA Daily ETF|ETS|XNAS|88
TSLL|Direxion Daily TSLA Bull 2X Shares|ETS|XNAS|18
""")
#: Commodity trusts: exchange-traded vehicles (ETV), not ETFs, in the live type list.
EXCHANGE_TRADED_VEHICLES = frozenset({"GLD", "SLV"})
#: Names with the deepest option chains (more contracts by default).
BIG_NAMES = frozenset(
    {
        "AAPL",
        "MSFT",
        "NVDA",
        "AMZN",
        "GOOGL",
        "META",
        "TSLA",
        "SPY",
        "QQQ",
        "IWM",
        "AMD",
        "AVGO",
        "PLTR",
        "NFLX",
        "COIN",
        "MSTR",
    }
)

# Synthetic type mix, roughly the listed US market's (common stock dominates).
_TYPES = ("CS", "ETF", "ADRC", "WARRANT", "PFD", "UNIT", "ETN", "ADRP", "RIGHT")
_TYPE_WEIGHTS = (0.70, 0.14, 0.04, 0.04, 0.03, 0.02, 0.01, 0.01, 0.01)
_EXCHANGES = ("XNAS", "XNYS", "ARCX", "BATS", "XASE")
_STOCK_VENUES = (0.58, 0.36, 0.0, 0.0, 0.06)
_FUND_VENUES = (0.15, 0.0, 0.65, 0.20, 0.0)
_SYLLABLES = (
    "al",
    "tor",
    "ven",
    "qu",
    "ix",
    "par",
    "lum",
    "cor",
    "ster",
    "nov",
    "gen",
    "tri",
    "mar",
    "bel",
    "dyn",
    "ora",
    "zen",
    "kal",
    "vor",
    "tek",
    "sol",
    "ari",
    "pha",
    "ron",
    "max",
)
_SUFFIXES = {
    "CS": (
        "Inc.",
        "Corp.",
        "Holdings, Inc.",
        "Group Inc.",
        "Therapeutics, Inc.",
        "Technologies Inc.",
        "Bancorp",
        "Energy Corp.",
        "Pharmaceuticals, Inc.",
        "Industries, Inc.",
    ),
    "ETF": ("Growth ETF", "Dividend ETF", "Equal Weight ETF", "Short-Term Bond ETF", "Momentum ETF"),
    "ETN": ("Enhanced Index ETN",),
    "ADRC": ("Ltd. American Depositary Shares", "plc American Depositary Shares"),
    "ADRP": ("S.A. Preferred American Depositary Shares",),
    "WARRANT": ("Corp. Warrants",),
    "PFD": ("Inc. 6.25% Series A Preferred Stock",),
    "UNIT": ("Acquisition Corp. Units",),
    "RIGHT": ("Acquisition Corp. Rights",),
}
_FIGI_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"
#: Share of synthetic names that are delisted (kept in the reference data with active=false).
DELISTED_SHARE = 0.03
_BATCH = 1024


@dataclass(frozen=True)
class Listing:
    """Per-symbol facts the bar generator needs besides the reference record."""

    symbol: str
    type: str
    price: float
    real: bool
    delisted: date | None


def _rfc3339(instant: datetime, whole_seconds: bool = False) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ" if whole_seconds else "%Y-%m-%dT%H:%M:%S.%f000Z")


def _hashed(seed: int, symbol: str, what: str) -> int:
    """A per-symbol draw that takes nothing from the random stream (the tidy universe stays as it was)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{what}:{symbol}".encode(), digest_size=4).digest(), "little")


#: Under ``ticker_sparse_ids``, about one record in six comes without a CIK and one in five
#: without FIGIs (preferreds always without either), as in the real reference list.
NO_CIK_ONE_IN, NO_FIGI_ONE_IN = 6, 5


def _sparse(seed: int, record: dict) -> None:
    symbol = record["ticker"]
    if record["type"] == "PFD" or _hashed(seed, symbol, "cik") % NO_CIK_ONE_IN == 0:
        del record["cik"]
    if record["type"] == "PFD" or _hashed(seed, symbol, "figi") % NO_FIGI_ONE_IN == 0:
        del record["composite_figi"], record["share_class_figi"]


def _fixed_names(n: int, profile: Profile) -> list[RealName]:
    names = list(REAL_NAMES)
    if profile.ticker_etv_ets:
        names = [RealName(r.symbol, r.name, "ETV", r.exchange, r.price) if r.symbol in EXCHANGE_TRADED_VEHICLES
                 else r for r in names] + list(SINGLE_SECURITY_ETFS)
    if profile.ticker_class_suffixes:
        names += CLASS_SUFFIX_NAMES
    return names[:n]


class _Draws:
    """Random draws made in bulk (per-call Generator overhead dominates at 11,000 names)."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.n = n
        self.kinds = rng.choice(len(_TYPES), size=n, p=_TYPE_WEIGHTS)
        self.lengths = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.01, 0.07, 0.40, 0.45, 0.07])
        self.letters = rng.integers(0, 26, size=(n, 5))
        self.syllables = rng.integers(0, len(_SYLLABLES), size=(n, 3))
        self.name_len = rng.integers(2, 4, size=n)
        self.suffix = rng.integers(0, 100, size=n)
        self.venue = rng.random(n)
        self.price_u = rng.random(n)
        self.price_z = rng.normal(np.log(30), 1.1, size=n)
        self.delisted = rng.random(n) < DELISTED_SHARE
        self.delisted_days = rng.integers(20, 700, size=n)
        self.cik = rng.integers(1_000, 2_100_000, size=n)
        self.figi = rng.integers(0, len(_FIGI_ALPHABET), size=(n, 2, 9))
        self.seconds = rng.integers(0, 3600, size=n)


def _figi(codes: np.ndarray) -> str:
    return "BBG" + "".join(_FIGI_ALPHABET[i] for i in codes)


def _synthetic_symbol(d: _Draws, i: int, kind: str) -> str:
    body = "".join(string.ascii_uppercase[k] for k in d.letters[i, : d.lengths[i]])
    # Warrants, units and rights carry their usual suffix letter.
    suffix = {"WARRANT": "W", "UNIT": "U", "RIGHT": "R"}.get(kind, "")
    return (body[:4] + suffix) if suffix else body


def _company_name(d: _Draws, i: int, kind: str) -> str:
    stem = "".join(_SYLLABLES[k] for k in d.syllables[i, : d.name_len[i]]).capitalize()
    options = _SUFFIXES[kind]
    return f"{stem} {options[d.suffix[i] % len(options)]}"


def _synthetic_price(d: _Draws, i: int, kind: str) -> float:
    u = float(d.price_u[i])
    if kind in ("WARRANT", "RIGHT"):
        return round(0.05 + 2.45 * u, 2)
    if kind in ("PFD", "ADRP"):
        return round(15 + 11 * u, 2)
    if kind == "UNIT":
        return round(9.8 + 1.7 * u, 2)
    return round(float(np.exp(d.price_z[i])) + 1.0, 2)


def _venue(d: _Draws, i: int, kind: str) -> str:
    weights = _FUND_VENUES if kind in ("ETF", "ETN") else _STOCK_VENUES
    return _EXCHANGES[min(int(np.searchsorted(np.cumsum(weights), d.venue[i])), len(_EXCHANGES) - 1)]


def build_universe(seed: int, n: int, end_date: date,
                   profile: Profile = TIDY) -> tuple[list[dict], list[Listing]]:
    """Reference records (with one duplicate) and per-symbol listings, both in universe order."""
    rng = np.random.default_rng([seed, 0x51A7])
    # Fixed-size batches keep the synthetic names a prefix-stable sequence: a bigger universe
    # extends a smaller one with the same seed.
    draws = _Draws(rng, _BATCH)
    updated = datetime.combine(end_date, time(6, 5), tzinfo=UTC)
    listings: list[Listing] = []
    records: list[dict] = []
    taken: set[str] = set()

    def add(i: int, symbol: str, name: str, kind: str, exchange: str, price: float, real: bool) -> None:
        delisted = None
        if not real and draws.delisted[i]:
            delisted = end_date - timedelta(days=int(draws.delisted_days[i]))
        record = {
            "ticker": symbol,
            "name": name,
            "market": "stocks",
            "locale": "us",
            "primary_exchange": exchange,
            "type": kind,
            "active": delisted is None,
            "currency_name": "usd",
            "cik": f"{int(draws.cik[i]):010d}",
            "composite_figi": _figi(draws.figi[i, 0]),
            "share_class_figi": _figi(draws.figi[i, 1]),
            "last_updated_utc": _rfc3339(updated + timedelta(seconds=int(draws.seconds[i])), whole),
        }
        if delisted is not None:
            record["delisted_utc"] = _rfc3339(datetime.combine(delisted, time(0), tzinfo=UTC), whole)
            record["last_updated_utc"] = record["delisted_utc"]
        if profile.ticker_sparse_ids:
            _sparse(seed, record)
        taken.add(symbol)
        records.append(record)
        listings.append(Listing(symbol, kind, price, real, delisted))

    whole = profile.ticker_whole_seconds
    fixed = _fixed_names(n, profile)
    for i, real in enumerate(fixed):
        add(i, real.symbol, real.name, real.type, real.exchange, real.price, True)
    i = max(len(REAL_NAMES), len(fixed))  # draws before this index belong to the fixed names
    while len(listings) < n:
        if i >= draws.n:
            draws, i = _Draws(rng, _BATCH), 0
        kind = _TYPES[draws.kinds[i]]
        symbol = _synthetic_symbol(draws, i, kind)
        if symbol not in taken:
            add(
                i,
                symbol,
                _company_name(draws, i, kind),
                kind,
                _venue(draws, i, kind),
                _synthetic_price(draws, i, kind),
                False,
            )
        i += 1

    # The API can return one ticker twice: an older record under another CIK.  Keep it next to
    # the original so clients that "keep the latest" have something to do.
    synthetic_active = [k for k, lst in enumerate(listings) if not lst.real and lst.delisted is None]
    if synthetic_active:
        k = synthetic_active[0]
        older = dict(records[k])
        older["cik"] = f"{int(rng.integers(1_000, 2_100_000)):010d}"
        older["last_updated_utc"] = _rfc3339(updated - timedelta(days=400), whole)
        records.insert(k + 1, older)
    return records, listings
