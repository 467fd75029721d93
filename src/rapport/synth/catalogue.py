"""Fixed reference data of the synthetic retailer: towns, stores, products, campaigns and names.

Town centres are real coordinates; store addresses and postcodes are made up but use each town's real
postcode area, so customers' postcodes, cities and nearest stores agree.
"""

from __future__ import annotations

from dataclasses import dataclass

RETAILER = "Hartley & Finch"


@dataclass(frozen=True)
class Town:
    """A UK town customers live in: its postcode areas, highest district number, centre and weight."""

    city: str
    areas: tuple[str, ...]
    max_district: int
    latitude: float
    longitude: float
    weight: float
    region: str


@dataclass(frozen=True)
class Store:
    """A shop of the retailer."""

    id: str
    name: str
    city: str
    postcode: str
    latitude: float
    longitude: float
    opened: str

    def as_dict(self) -> dict[str, object]:
        """Return the store as a plain dict (for workspace settings and files)."""
        return {
            "id": self.id,
            "name": self.name,
            "city": self.city,
            "postcode": self.postcode,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "opened": self.opened,
        }


@dataclass(frozen=True)
class Product:
    """An item of the catalogue, priced in GBP."""

    sku: str
    name: str
    category: str
    price: float

    def as_dict(self) -> dict[str, object]:
        """Return the product as a plain dict."""
        return {"sku": self.sku, "name": self.name, "category": self.category, "price": self.price}


TOWNS: tuple[Town, ...] = (
    Town("London", ("SW", "SE", "N", "E", "W", "NW"), 20, 51.5074, -0.1278, 16.0, "London"),
    Town("Manchester", ("M",), 40, 53.4808, -2.2426, 6.0, "North West"),
    Town("Birmingham", ("B",), 45, 52.4862, -1.8904, 6.0, "West Midlands"),
    Town("Leeds", ("LS",), 29, 53.7997, -1.5492, 5.0, "Yorkshire and the Humber"),
    Town("Glasgow", ("G",), 46, 55.8642, -4.2518, 4.5, "Scotland"),
    Town("Liverpool", ("L",), 38, 53.4084, -2.9916, 4.0, "North West"),
    Town("Bristol", ("BS",), 41, 51.4545, -2.5879, 4.0, "South West"),
    Town("Sheffield", ("S",), 36, 53.3811, -1.4701, 4.0, "Yorkshire and the Humber"),
    Town("Edinburgh", ("EH",), 55, 55.9533, -3.1883, 4.0, "Scotland"),
    Town("Newcastle upon Tyne", ("NE",), 20, 54.9783, -1.6178, 3.0, "North East"),
    Town("Nottingham", ("NG",), 25, 52.9548, -1.1581, 3.0, "East Midlands"),
    Town("Cardiff", ("CF",), 24, 51.4816, -3.1791, 3.0, "Wales"),
    Town("Belfast", ("BT",), 17, 54.5973, -5.9301, 2.5, "Northern Ireland"),
    Town("Brighton", ("BN",), 3, 50.8225, -0.1372, 2.0, "South East"),
    Town("York", ("YO",), 32, 53.9590, -1.0815, 2.0, "Yorkshire and the Humber"),
    Town("Cambridge", ("CB",), 5, 52.2053, 0.1218, 1.5, "East of England"),
    Town("Oxford", ("OX",), 4, 51.7520, -1.2577, 1.5, "South East"),
    Town("Norwich", ("NR",), 18, 52.6309, 1.2974, 1.5, "East of England"),
    Town("Exeter", ("EX",), 6, 50.7184, -3.5339, 1.2, "South West"),
    Town("Harrogate", ("HG",), 3, 53.9921, -1.5418, 1.0, "Yorkshire and the Humber"),
    Town("Bath", ("BA",), 2, 51.3811, -2.3590, 1.0, "South West"),
    Town("Aberdeen", ("AB",), 25, 57.1497, -2.0943, 1.3, "Scotland"),
)

STORES: tuple[Store, ...] = (
    Store("st-lon-ox", "London Oxford Street", "London", "W1D 1BS", 51.5154, -0.1410, "2009-03-14"),
    Store("st-lon-kx", "London King's Cross", "London", "N1C 4AB", 51.5347, -0.1246, "2016-09-01"),
    Store("st-lon-cw", "London Clapham", "London", "SW4 7AA", 51.4613, -0.1380, "2012-05-19"),
    Store("st-man", "Manchester Market Street", "Manchester", "M1 1PW", 53.4829, -2.2390, "2008-11-08"),
    Store("st-bir", "Birmingham New Street", "Birmingham", "B2 4QA", 52.4787, -1.8983, "2010-04-24"),
    Store("st-lds", "Leeds Briggate", "Leeds", "LS1 6HD", 53.7976, -1.5421, "2007-06-02"),
    Store("st-gla", "Glasgow Buchanan Street", "Glasgow", "G1 2FF", 55.8616, -4.2530, "2011-10-15"),
    Store("st-liv", "Liverpool Bold Street", "Liverpool", "L1 4DS", 53.4027, -2.9790, "2013-03-09"),
    Store("st-bri", "Bristol Broadmead", "Bristol", "BS1 3HA", 51.4581, -2.5870, "2010-08-21"),
    Store("st-she", "Sheffield Fargate", "Sheffield", "S1 2HE", 53.3822, -1.4693, "2014-02-01"),
    Store("st-edi", "Edinburgh Princes Street", "Edinburgh", "EH2 2ER", 55.9520, -3.1960, "2009-09-26"),
    Store(
        "st-ncl",
        "Newcastle Northumberland Street",
        "Newcastle upon Tyne",
        "NE1 7DE",
        54.9765,
        -1.6106,
        "2012-11-17",
    ),
    Store("st-not", "Nottingham Clumber Street", "Nottingham", "NG1 3ED", 52.9547, -1.1470, "2015-04-11"),
    Store("st-cdf", "Cardiff Queen Street", "Cardiff", "CF10 2BY", 51.4823, -3.1742, "2013-07-06"),
    Store("st-bel", "Belfast Donegall Place", "Belfast", "BT1 5AD", 54.5985, -5.9302, "2017-05-13"),
    Store("st-bri2", "Brighton North Laine", "Brighton", "BN1 4GH", 50.8255, -0.1393, "2018-03-24"),
    Store("st-yrk", "York Coney Street", "York", "YO1 9QL", 53.9594, -1.0843, "2011-05-07"),
    Store("st-cam", "Cambridge Sidney Street", "Cambridge", "CB2 3HX", 52.2072, 0.1205, "2019-10-05"),
    Store("st-oxf", "Oxford Cornmarket", "Oxford", "OX1 3EX", 51.7530, -1.2590, "2016-06-18"),
    Store("st-nor", "Norwich Gentleman's Walk", "Norwich", "NR2 1NA", 52.6283, 1.2930, "2014-09-13"),
    Store("st-exe", "Exeter High Street", "Exeter", "EX4 3LS", 50.7250, -3.5300, "2020-02-29"),
    Store("st-hgt", "Harrogate James Street", "Harrogate", "HG1 1QS", 53.9930, -1.5390, "2021-04-17"),
    Store("st-bth", "Bath Milsom Street", "Bath", "BA1 1DN", 51.3840, -2.3620, "2015-11-21"),
    Store("st-abd", "Aberdeen Union Street", "Aberdeen", "AB11 6BA", 57.1460, -2.0990, "2018-08-11"),
)

PRODUCTS: tuple[Product, ...] = (
    Product("CL-001", "Merino crew jumper", "Clothing", 59.0),
    Product("CL-002", "Organic cotton T-shirt", "Clothing", 18.0),
    Product("CL-003", "Waxed field jacket", "Clothing", 149.0),
    Product("CL-004", "Slim chinos", "Clothing", 45.0),
    Product("CL-005", "Linen shirt", "Clothing", 39.0),
    Product("CL-006", "Quilted gilet", "Clothing", 69.0),
    Product("CL-007", "Wool overcoat", "Clothing", 229.0),
    Product("CL-008", "Striped Breton top", "Clothing", 32.0),
    Product("FW-001", "Leather Chelsea boots", "Footwear", 120.0),
    Product("FW-002", "Canvas trainers", "Footwear", 55.0),
    Product("FW-003", "Walking boots", "Footwear", 135.0),
    Product("FW-004", "Suede loafers", "Footwear", 89.0),
    Product("FW-005", "Wellington boots", "Footwear", 42.0),
    Product("HM-001", "Stoneware mug set", "Home", 24.0),
    Product("HM-002", "Wool throw", "Home", 65.0),
    Product("HM-003", "Linen bedding set", "Home", 110.0),
    Product("HM-004", "Scented candle", "Home", 16.0),
    Product("HM-005", "Cast-iron casserole", "Home", 95.0),
    Product("HM-006", "Table lamp", "Home", 79.0),
    Product("BT-001", "Hand cream", "Beauty", 12.0),
    Product("BT-002", "Eau de parfum 50ml", "Beauty", 68.0),
    Product("BT-003", "Shaving kit", "Beauty", 35.0),
    Product("BT-004", "Bath oil", "Beauty", 22.0),
    Product("EL-001", "Wireless headphones", "Electronics", 149.0),
    Product("EL-002", "Bluetooth speaker", "Electronics", 79.0),
    Product("EL-003", "Smart watch", "Electronics", 249.0),
    Product("EL-004", "Phone charger", "Electronics", 19.0),
    Product("GD-001", "Garden tool set", "Garden", 49.0),
    Product("GD-002", "Rattan chair", "Garden", 189.0),
    Product("GD-003", "Herb planter", "Garden", 28.0),
    Product("FD-001", "Yorkshire tea hamper", "Food & Drink", 45.0),
    Product("FD-002", "Single estate coffee", "Food & Drink", 11.5),
    Product("FD-003", "Shortbread tin", "Food & Drink", 8.5),
    Product("FD-004", "Christmas pudding", "Food & Drink", 14.0),
    Product("TY-001", "Wooden train set", "Toys", 38.0),
    Product("TY-002", "Jigsaw puzzle 1000 pieces", "Toys", 17.0),
    Product("TY-003", "Plush bear", "Toys", 22.0),
)

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(p.category for p in PRODUCTS))

#: Marketing sends of the year, fortnightly from early November: (id, days before the reference date, name).
EMAIL_CAMPAIGNS: tuple[tuple[str, int, str], ...] = tuple(
    (f"em-{i:02d}", 364 - i * 14, name)
    for i, name in enumerate(
        [
            "Autumn layers",
            "Black Friday preview",
            "Black Friday",
            "Gift guide",
            "Last posting days",
            "January sale",
            "Sale final days",
            "Valentine's",
            "Spring arrivals",
            "Mother's Day",
            "Easter treats",
            "Garden ready",
            "Spring clean",
            "Summer linen",
            "Festival boots",
            "Summer sale",
            "Holiday essentials",
            "Travel edit",
            "Back to school",
            "Style notes",
            "Outdoor living",
            "Knitwear week",
            "Cosy home",
            "New season edit",
            "Loyalty rewards",
            "Weekend offers",
        ]
    )
)
SMS_CAMPAIGNS: tuple[tuple[str, int, str], ...] = tuple(
    (f"sms-{i:02d}", 350 - i * 30, f"Flash offer {i + 1}") for i in range(12)
)

# fmt: off
FIRST_NAMES: tuple[str, ...] = (
    "Oliver", "George", "Harry", "Jack", "Noah", "Charlie", "Jacob", "Alfie", "Freddie", "Oscar",
    "Leo", "Archie", "Henry", "Joshua", "James", "William", "Thomas", "Isaac", "Arthur", "Samuel",
    "Daniel", "Mohammed", "Ethan", "Lucas", "Adam", "Callum", "Ryan", "Liam", "Connor", "Euan",
    "Olivia", "Amelia", "Isla", "Ava", "Emily", "Sophia", "Grace", "Mia", "Poppy", "Ella",
    "Lily", "Evie", "Isabella", "Sophie", "Ivy", "Freya", "Harper", "Willow", "Charlotte", "Jessica",
    "Chloe", "Ruby", "Alice", "Hannah", "Lucy", "Eleanor", "Megan", "Zara", "Aisha", "Priya",
    "Fiona", "Siobhan", "Niamh", "Rhiannon", "Eilidh", "Catriona", "Gareth", "Rhys", "Dylan", "Declan",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson",
    "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall",
    "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin", "Cooper", "Hill",
    "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison", "Morgan", "Allen",
    "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price", "Bennett", "Young", "Griffiths",
    "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey", "Collins", "Bell", "Shaw", "Murphy",
    "Campbell", "Stewart", "MacDonald", "Reid", "Murray", "Khan", "Ali", "Hussain", "Singh", "O'Brien",
)
# fmt: on
#: Reserved (RFC 2606 / RFC 6761) domains only: synthetic customers must never reach a real mailbox.
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net", "mail.example", "post.example")

PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Home"),
    ("/new-in", "New in"),
    ("/sale", "Sale"),
    ("/stores", "Find a store"),
    ("/account", "My account"),
    ("/basket", "Basket"),
    ("/journal", "The journal"),
    ("/delivery", "Delivery and returns"),
)
SCREENS: tuple[str, ...] = ("Home", "Search", "Product", "Basket", "Loyalty card", "Store finder", "Account")
REFERRERS: tuple[str, ...] = ("", "", "", "https://www.google.com/", "https://www.instagram.com/", "email")
