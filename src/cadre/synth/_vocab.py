"""Word lists the generators draw from (names, products, companies, places). Invented or generic words only."""

from __future__ import annotations

__all__ = [
    "CITIES",
    "CUSTOMER_NAMES",
    "PRODUCTS",
    "STREETS",
    "VENDORS",
]

CUSTOMER_NAMES = (
    "Anna Keller", "Ben Okafor", "Carla Mendes", "David Nguyen", "Elif Yilmaz", "Farah Haddad", "Gustavo Reyes",
    "Hana Sato", "Ivan Petrov", "Julia Novak", "Kwame Mensah", "Lena Fischer", "Marco Rossi", "Nadia Karimi",
    "Oscar Lindqvist", "Priya Raman", "Quentin Dubois", "Rosa Alvarez", "Samir Aziz", "Tara O'Neill",
    "Umar Farouk", "Vera Smirnova", "Wei Zhang", "Ximena Torres", "Yusuf Demir", "Zoe Campbell",
    "Aiko Tanaka", "Bruno Costa", "Chloe Martin", "Dmitri Volkov", "Ewa Kowalska", "Felix Braun",
)

PRODUCTS = (
    "wireless earbuds", "standing desk", "espresso machine", "yoga mat", "running shoes", "phone case",
    "laptop sleeve", "desk lamp", "water bottle", "backpack", "mechanical keyboard", "winter jacket",
    "coffee grinder", "bluetooth speaker", "office chair", "smart watch", "rain boots", "blender",
    "air purifier", "camping tent", "electric kettle", "monitor stand", "hiking socks", "USB-C hub",
    "cast iron pan", "reading glasses", "gaming mouse", "bed sheets", "travel mug", "wall clock",
)

VENDORS = (
    "Acme Supplies Ltd", "Northwind Traders", "Bluefin Logistics", "Copperleaf Studio", "Greystone Hardware",
    "Helios Office GmbH", "Ironbark Tools", "Juniper Print Co", "Kestrel Software Inc", "Lumen Lighting BV",
    "Maple & Pine Furniture", "Nimbus Cloud Services", "Orchard Foods", "Pioneer Freight", "Quartz Labs",
    "Riverbend Catering", "Saffron Textiles", "Tidewater Marine", "Umbra Design", "Vantage Consulting LLC",
    "Willow Health", "Zenith Electrical", "Atlas Paper Mills", "Beacon Security", "Cobalt Networks SA",
    "Driftwood Events", "Evergreen Landscaping", "Falcon Couriers", "Granite Legal LLP", "Harbor Coffee Roasters",
)

CITIES = (
    "Lisbon", "Rotterdam", "Denver", "Osaka", "Leeds", "Porto", "Austin", "Lyon", "Krakow", "Dublin",
    "Toronto", "Melbourne", "Munich", "Seville", "Gothenburg", "Nairobi", "Montreal", "Valencia",
)

STREETS = (
    "Oak Street", "Harbour Road", "Linden Avenue", "Mill Lane", "Station Road", "Park Drive", "Bridge Street",
    "Elm Court", "Market Square", "Hillside Way", "Cedar Close", "Rue Verte", "Canal Street", "Meadow Lane",
)
