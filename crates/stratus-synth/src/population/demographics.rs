//! Names, places, languages and the US Core race and ethnicity categories.
//!
//! Names include accented and non-Latin-origin spellings on purpose: de-identification and
//! text tooling must handle UTF-8 names in resources and in note text. Places are real US
//! cities with their ZIP prefixes, state FIPS codes and time zones, so that addresses,
//! driver's licence issuers and timestamp offsets agree with one another.

use super::codes::{Code, OMB, code};
use super::time::Tz;

/// A city patients and organizations live in.
pub(super) struct Place {
    pub city: &'static str,
    pub state: &'static str,
    /// The first three digits of local ZIP codes.
    pub zip3: &'static str,
    /// State FIPS code (driver's licence OIDs use it).
    pub fips: &'static str,
    pub tz: Tz,
    pub area_code: &'static str,
}

const fn place(
    city: &'static str,
    state: &'static str,
    zip3: &'static str,
    fips: &'static str,
    tz: Tz,
    area_code: &'static str,
) -> Place {
    Place {
        city,
        state,
        zip3,
        fips,
        tz,
        area_code,
    }
}

/// Places with relative weights (roughly metro population).
pub(super) static PLACES: &[(Place, u32)] = &[
    (place("Boston", "MA", "021", "25", Tz::EASTERN, "617"), 40),
    (
        place("Worcester", "MA", "016", "25", Tz::EASTERN, "508"),
        10,
    ),
    (
        place("Springfield", "MA", "011", "25", Tz::EASTERN, "413"),
        8,
    ),
    (place("New York", "NY", "100", "36", Tz::EASTERN, "212"), 80),
    (place("Buffalo", "NY", "142", "36", Tz::EASTERN, "716"), 10),
    (
        place("Philadelphia", "PA", "191", "42", Tz::EASTERN, "215"),
        30,
    ),
    (
        place("Pittsburgh", "PA", "152", "42", Tz::EASTERN, "412"),
        15,
    ),
    (
        place("Baltimore", "MD", "212", "24", Tz::EASTERN, "410"),
        15,
    ),
    (place("Atlanta", "GA", "303", "13", Tz::EASTERN, "404"), 30),
    (place("Miami", "FL", "331", "12", Tz::EASTERN, "305"), 30),
    (place("Orlando", "FL", "328", "12", Tz::EASTERN, "407"), 15),
    (
        place("Charlotte", "NC", "282", "37", Tz::EASTERN, "704"),
        15,
    ),
    (place("Columbus", "OH", "432", "39", Tz::EASTERN, "614"), 12),
    (place("Detroit", "MI", "482", "26", Tz::EASTERN, "313"), 20),
    (
        place("Louisville", "KY", "402", "21", Tz::EASTERN, "502"),
        8,
    ),
    (place("Chicago", "IL", "606", "17", Tz::CENTRAL, "312"), 45),
    (place("Houston", "TX", "770", "48", Tz::CENTRAL, "713"), 35),
    (place("Dallas", "TX", "752", "48", Tz::CENTRAL, "214"), 35),
    (
        place("San Antonio", "TX", "782", "48", Tz::CENTRAL, "210"),
        12,
    ),
    (
        place("Minneapolis", "MN", "554", "27", Tz::CENTRAL, "612"),
        18,
    ),
    (
        place("Nashville", "TN", "372", "47", Tz::CENTRAL, "615"),
        10,
    ),
    (
        place("Kansas City", "MO", "641", "29", Tz::CENTRAL, "816"),
        10,
    ),
    (
        place("New Orleans", "LA", "701", "22", Tz::CENTRAL, "504"),
        8,
    ),
    (place("Denver", "CO", "802", "08", Tz::MOUNTAIN, "303"), 15),
    (
        place("Salt Lake City", "UT", "841", "49", Tz::MOUNTAIN, "801"),
        6,
    ),
    (
        place("Albuquerque", "NM", "871", "35", Tz::MOUNTAIN, "505"),
        5,
    ),
    (place("Phoenix", "AZ", "850", "04", Tz::ARIZONA, "602"), 25),
    (place("Tucson", "AZ", "857", "04", Tz::ARIZONA, "520"), 5),
    (
        place("Los Angeles", "CA", "900", "06", Tz::PACIFIC, "213"),
        70,
    ),
    (
        place("San Diego", "CA", "921", "06", Tz::PACIFIC, "619"),
        18,
    ),
    (
        place("San Francisco", "CA", "941", "06", Tz::PACIFIC, "415"),
        25,
    ),
    (place("Seattle", "WA", "981", "53", Tz::PACIFIC, "206"), 20),
    (place("Portland", "OR", "972", "41", Tz::PACIFIC, "503"), 12),
    (place("Anchorage", "AK", "995", "02", Tz::ALASKA, "907"), 2),
    (place("Honolulu", "HI", "968", "15", Tz::HAWAII, "808"), 5),
];

pub(super) static STREETS: &[&str] = &[
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Pine",
    "Walnut",
    "Sunset",
    "Highland",
    "Church",
    "Mill",
    "River",
    "Spring",
    "Ridge",
    "Chestnut",
    "Franklin",
    "Jefferson",
    "Lincoln",
    "Madison",
    "Center",
    "School",
    "Willow",
    "Union",
    "Prospect",
    "Bay",
    "Forest",
];

pub(super) static STREET_SUFFIXES: &[&str] = &[
    "Street",
    "Avenue",
    "Road",
    "Lane",
    "Drive",
    "Court",
    "Way",
    "Boulevard",
    "Place",
];

/// Name origin groups, so that names, languages and ethnicity are not independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    General,
    Hispanic,
    Asian,
}

pub(super) static FEMALE_GIVEN: &[(&str, Origin)] = &[
    ("Mary", Origin::General),
    ("Patricia", Origin::General),
    ("Jennifer", Origin::General),
    ("Linda", Origin::General),
    ("Elizabeth", Origin::General),
    ("Barbara", Origin::General),
    ("Susan", Origin::General),
    ("Jessica", Origin::General),
    ("Sarah", Origin::General),
    ("Karen", Origin::General),
    ("Emily", Origin::General),
    ("Ashley", Origin::General),
    ("Olivia", Origin::General),
    ("Emma", Origin::General),
    ("Ava", Origin::General),
    ("Chloé", Origin::General),
    ("Zoë", Origin::General),
    ("Aaliyah", Origin::General),
    ("Imani", Origin::General),
    ("Margaret", Origin::General),
    ("Dorothy", Origin::General),
    ("Ruth", Origin::General),
    ("Hannah", Origin::General),
    ("Siobhán", Origin::General),
    ("María", Origin::Hispanic),
    ("Lucía", Origin::Hispanic),
    ("Sofía", Origin::Hispanic),
    ("Camila", Origin::Hispanic),
    ("Valentina", Origin::Hispanic),
    ("Guadalupe", Origin::Hispanic),
    ("Ximena", Origin::Hispanic),
    ("Rosa", Origin::Hispanic),
    ("Mei", Origin::Asian),
    ("Hana", Origin::Asian),
    ("Linh", Origin::Asian),
    ("Ji-woo", Origin::Asian),
    ("Priya", Origin::Asian),
    ("Ananya", Origin::Asian),
    ("Yuki", Origin::Asian),
    ("Xiu", Origin::Asian),
];

pub(super) static MALE_GIVEN: &[(&str, Origin)] = &[
    ("James", Origin::General),
    ("Robert", Origin::General),
    ("John", Origin::General),
    ("Michael", Origin::General),
    ("David", Origin::General),
    ("William", Origin::General),
    ("Richard", Origin::General),
    ("Joseph", Origin::General),
    ("Thomas", Origin::General),
    ("Christopher", Origin::General),
    ("Daniel", Origin::General),
    ("Matthew", Origin::General),
    ("Anthony", Origin::General),
    ("Noah", Origin::General),
    ("Liam", Origin::General),
    ("Ethan", Origin::General),
    ("DeShawn", Origin::General),
    ("Malik", Origin::General),
    ("Seán", Origin::General),
    ("François", Origin::General),
    ("Walter", Origin::General),
    ("Harold", Origin::General),
    ("O'Neil", Origin::General),
    ("Benjamin", Origin::General),
    ("José", Origin::Hispanic),
    ("Juan", Origin::Hispanic),
    ("Luis", Origin::Hispanic),
    ("Carlos", Origin::Hispanic),
    ("Jesús", Origin::Hispanic),
    ("Mateo", Origin::Hispanic),
    ("Santiago", Origin::Hispanic),
    ("Andrés", Origin::Hispanic),
    ("Wei", Origin::Asian),
    ("Minh", Origin::Asian),
    ("Hiroshi", Origin::Asian),
    ("Min-jun", Origin::Asian),
    ("Arjun", Origin::Asian),
    ("Rohan", Origin::Asian),
    ("Jian", Origin::Asian),
    ("Tuan", Origin::Asian),
];

pub(super) static FAMILY: &[(&str, Origin)] = &[
    ("Smith", Origin::General),
    ("Johnson", Origin::General),
    ("Williams", Origin::General),
    ("Brown", Origin::General),
    ("Jones", Origin::General),
    ("Miller", Origin::General),
    ("Davis", Origin::General),
    ("Wilson", Origin::General),
    ("Anderson", Origin::General),
    ("Taylor", Origin::General),
    ("Thomas", Origin::General),
    ("Moore", Origin::General),
    ("Jackson", Origin::General),
    ("Martin", Origin::General),
    ("Thompson", Origin::General),
    ("White", Origin::General),
    ("Harris", Origin::General),
    ("Clark", Origin::General),
    ("Lewis", Origin::General),
    ("Robinson", Origin::General),
    ("Walker", Origin::General),
    ("Young", Origin::General),
    ("Allen", Origin::General),
    ("King", Origin::General),
    ("Wright", Origin::General),
    ("Scott", Origin::General),
    ("Green", Origin::General),
    ("Baker", Origin::General),
    ("Adams", Origin::General),
    ("Nelson", Origin::General),
    ("O'Brien", Origin::General),
    ("McCarthy", Origin::General),
    ("Kowalski", Origin::General),
    ("Müller", Origin::General),
    ("Ben-David", Origin::General),
    ("St. John", Origin::General),
    ("Okafor", Origin::General),
    ("Abernathy", Origin::General),
    ("Fitzgerald", Origin::General),
    ("Lindqvist", Origin::General),
    ("Garcia", Origin::Hispanic),
    ("Rodriguez", Origin::Hispanic),
    ("Martinez", Origin::Hispanic),
    ("Hernández", Origin::Hispanic),
    ("López", Origin::Hispanic),
    ("González", Origin::Hispanic),
    ("Pérez", Origin::Hispanic),
    ("Sánchez", Origin::Hispanic),
    ("Ramírez", Origin::Hispanic),
    ("Torres", Origin::Hispanic),
    ("Flores", Origin::Hispanic),
    ("Rivera", Origin::Hispanic),
    ("Gómez", Origin::Hispanic),
    ("Díaz", Origin::Hispanic),
    ("Nguyen", Origin::Asian),
    ("Tran", Origin::Asian),
    ("Le", Origin::Asian),
    ("Kim", Origin::Asian),
    ("Lee", Origin::Asian),
    ("Park", Origin::Asian),
    ("Wang", Origin::Asian),
    ("Li", Origin::Asian),
    ("Zhang", Origin::Asian),
    ("Chen", Origin::Asian),
    ("Patel", Origin::Asian),
    ("Shah", Origin::Asian),
    ("Tanaka", Origin::Asian),
    ("Sato", Origin::Asian),
    ("Santos", Origin::Asian),
    ("Reyes", Origin::Asian),
];

/// A name from a list, preferring the patient's origin group most of the time.
pub(super) fn pick_name(
    rng: &mut crate::rng::Rng,
    names: &'static [(&'static str, Origin)],
    origin: Origin,
) -> &'static str {
    // Several tries at the matching group, then anything: cheap and without a filtered copy.
    if rng.chance(0.8) {
        for _ in 0..8 {
            let (n, o) = rng.pick(names);
            if *o == origin {
                return n;
            }
        }
    }
    rng.pick(names).0
}

pub(super) const BCP47: &str = "urn:ietf:bcp:47";
pub(super) const ENGLISH: Code = code(BCP47, "en-US", "English (United States)");
pub(super) const SPANISH: Code = code(BCP47, "es", "Spanish");

pub(super) static ASIAN_LANGUAGES: &[Code] = &[
    code(BCP47, "zh", "Chinese"),
    code(BCP47, "vi", "Vietnamese"),
    code(BCP47, "ko", "Korean"),
    code(BCP47, "tl", "Tagalog"),
    code(BCP47, "hi", "Hindi"),
];

pub(super) static OTHER_LANGUAGES: &[Code] = &[
    code(BCP47, "fr", "French"),
    code(BCP47, "ht", "Haitian Creole"),
    code(BCP47, "ru", "Russian"),
    code(BCP47, "pt", "Portuguese"),
    code(BCP47, "ar", "Arabic"),
    code(BCP47, "pl", "Polish"),
];

/// OMB race categories with weights; `None` is "asked but unknown".
pub(super) static RACES: &[(Option<Code>, u32)] = &[
    (Some(code(OMB, "2106-3", "White")), 620),
    (Some(code(OMB, "2054-5", "Black or African American")), 130),
    (Some(code(OMB, "2028-9", "Asian")), 60),
    (
        Some(code(OMB, "1002-5", "American Indian or Alaska Native")),
        10,
    ),
    (
        Some(code(
            OMB,
            "2076-8",
            "Native Hawaiian or Other Pacific Islander",
        )),
        3,
    ),
    (None, 20),
];

pub(super) const HISPANIC: Code = code(OMB, "2135-2", "Hispanic or Latino");
pub(super) const NOT_HISPANIC: Code = code(OMB, "2186-5", "Not Hispanic or Latino");
pub(super) const ASKED_UNKNOWN: Code = code(
    "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
    "ASKU",
    "Asked but no answer",
);

const MARITAL: &str = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus";
pub(super) const MARRIED: Code = code(MARITAL, "M", "Married");
pub(super) const NEVER_MARRIED: Code = code(MARITAL, "S", "Never Married");
pub(super) const DIVORCED: Code = code(MARITAL, "D", "Divorced");
pub(super) const WIDOWED: Code = code(MARITAL, "W", "Widowed");

pub(super) static OCCUPATIONS: &[&str] = &[
    "works as a teacher",
    "works in construction",
    "is a retired machinist",
    "works as a nurse",
    "is a student",
    "works in retail",
    "drives for a delivery company",
    "is an accountant",
    "works from home in software",
    "is a homemaker",
    "works in a restaurant kitchen",
    "is a retired postal worker",
];

pub(super) static HOUSEHOLDS: &[&str] = &[
    "Lives alone",
    "Lives with spouse",
    "Lives with spouse and two children",
    "Lives with parents",
    "Lives with a roommate",
    "Lives with adult daughter",
];

pub(super) static ALCOHOL: &[&str] = &[
    "does not drink alcohol",
    "drinks alcohol socially",
    "drinks one to two beers on weekends",
    "quit drinking alcohol several years ago",
];
