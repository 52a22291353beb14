//! Who a patient is: cohort traits, demographics, identifiers, and the Patient resource.
//!
//! The few traits that decide Group membership (gender, birth date, diabetes, the random
//! sample) come from a stream of their own, [`core`], so that the Group writer can recompute
//! membership for patient `i` at the end without regenerating the patient and without
//! remembering anything while patients stream by.

use crate::ids::population_id;
use crate::rng::Rng;

use super::MRN_SYSTEM;
use super::codes::{Code, SMOKING_STATUS, SSN, V2_0203, code};
use super::demographics::{
    self, ASIAN_LANGUAGES, ASKED_UNKNOWN, DIVORCED, ENGLISH, FAMILY, FEMALE_GIVEN, HISPANIC,
    MALE_GIVEN, MARRIED, NEVER_MARRIED, NOT_HISPANIC, OTHER_LANGUAGES, Origin, PLACES, Place,
    RACES, SPANISH, WIDOWED,
};
use super::json::Json;
use super::pools::{self, Pools};
use super::sink::{Kind, Sink};
use super::time::{self, DAY, Stamp, Tz};

/// Cohort-trait streams: above the patient streams (which use the bare index), below the
/// pool streams.
const TRAIT_STREAM: u64 = 1 << 62;

/// Gender as FHIR's administrative gender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gender {
    Female,
    Male,
    Other,
    Unknown,
}

impl Gender {
    pub fn fhir(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }
}

/// The traits Group membership depends on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Core {
    pub gender: Gender,
    /// Day number of the birth date.
    pub birth: i64,
    /// Has type 2 diabetes (always recorded as a Condition).
    pub diabetic: bool,
    /// In the 10% random sample cohort.
    pub sampled: bool,
}

/// Age bands (years at the end of the record) with weights: a US-like pyramid from 0 to 100.
const AGES: &[((i64, i64), u32)] = &[
    ((0, 4), 6),
    ((5, 17), 16),
    ((18, 29), 16),
    ((30, 44), 20),
    ((45, 64), 25),
    ((65, 79), 13),
    ((80, 99), 4),
];

/// The cohort traits of patient `index`.
pub(super) fn core(seed: u64, index: u64) -> Core {
    let mut rng = Rng::new(seed, TRAIT_STREAM | index);
    let gender = *rng.weighted(&[
        (Gender::Female, 5050),
        (Gender::Male, 4900),
        (Gender::Other, 30),
        (Gender::Unknown, 20),
    ]);
    let (lo, hi) = *rng.weighted(AGES);
    let age = rng.range(lo, hi);
    let earliest = time::days_from_civil(1925, 1, 1);
    let latest = time::days_from_civil(2024, 12, 31);
    let birth = (time::END - age * 365 - age / 4 - rng.range(0, 364)).clamp(earliest, latest);
    let p_diabetes = match time::years_between(birth, time::END) {
        ..18 => 0.003,
        18..45 => 0.04,
        45..65 => 0.14,
        _ => 0.22,
    };
    let diabetic = rng.chance(p_diabetes);
    let sampled = rng.chance(0.10);
    Core {
        gender,
        birth,
        diabetic,
        sampled,
    }
}

/// The MRN of patient `index`: a 13-digit number that is a keyed permutation of the index
/// (four Feistel rounds over 40 bits keyed by the seed), so MRNs look unordered yet are
/// unique within a population and reproducible from `(seed, index)`.
pub fn mrn(seed: u64, index: u64) -> String {
    const BITS: u32 = 20;
    const MASK: u64 = (1 << BITS) - 1;
    let high = index >> (2 * BITS);
    let (mut l, mut r) = ((index >> BITS) & MASK, index & MASK);
    for round in 0..4u64 {
        let mut h = seed
            ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ r.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 29;
        (l, r) = (r, l ^ (h & MASK));
    }
    format!("{:013}", (high << (2 * BITS)) | (l << BITS) | r)
}

/// The MRN of the older duplicate record a patient replaced: another index range, so it
/// never equals a current MRN while the population has fewer than 2^39 patients.
fn old_mrn(seed: u64, index: u64) -> String {
    mrn(seed, index | (1 << 39))
}

/// A practitioner a patient sees, with the id precomputed once per patient.
pub(super) struct Staff {
    pub index: u64,
    pub id: String,
}

/// Everything about a patient that stays fixed over their record.
pub(super) struct Person {
    pub index: u64,
    pub id: String,
    pub core: Core,
    pub given: &'static str,
    pub middle: Option<&'static str>,
    pub family: &'static str,
    pub home: &'static Place,
    /// Where care happens: clinical times are in this zone.
    pub tz: Tz,
    pub org_id: String,
    pub org_name: String,
    pub hospital_id: String,
    /// Whether the patient's own organization is a hospital (then it has no pharmacy).
    pub org_is_hospital: bool,
    pub hospital_name: String,
    /// Clinic main site, clinic second site (pharmacy, or ED if the org is a hospital),
    /// hospital main site, hospital emergency department.
    pub clinic_location: String,
    pub pharmacy_location: String,
    pub hospital_location: String,
    pub ed_location: String,
    /// `staff[0]` is the general practitioner; 1..3 work at the clinic, 3..6 at the hospital.
    pub staff: Vec<Staff>,
    pub mrn: String,
    pub origin: Origin,
    pub race: Option<&'static Code>,
    pub hispanic: Option<bool>,
    pub language: &'static Code,
    pub death: Option<Stamp>,
    /// Adult height in cm and usual BMI: vital signs vary around these.
    pub adult_height: f64,
    pub bmi: f64,
    pub smoking: usize,
}

impl Person {
    pub fn female(&self) -> bool {
        self.core.gender == Gender::Female
    }

    /// Age in whole years at a time.
    pub fn age_at(&self, t: Stamp) -> i64 {
        time::years_between(self.core.birth, t.day())
    }

    /// The end of the record: death or the population's last day.
    pub fn end(&self) -> Stamp {
        self.death
            .unwrap_or_else(|| Stamp::at(time::END, 23, 0, self.tz))
    }

    /// "man", "woman", or "person".
    pub fn noun(&self, age: i64) -> &'static str {
        match (self.core.gender, age < 18) {
            (Gender::Female, false) => "woman",
            (Gender::Male, false) => "man",
            (Gender::Female, true) => "girl",
            (Gender::Male, true) => "boy",
            _ => "person",
        }
    }
}

/// Draws a person's fixed facts from their stream.
pub(super) fn person(seed: u64, index: u64, pools: &Pools, rng: &mut Rng) -> Person {
    let core = core(seed, index);
    let hispanic = match rng.below(100) {
        0..18 => Some(true),
        18..98 => Some(false),
        _ => None,
    };
    let race = rng.weighted(RACES).as_ref();
    let origin = if hispanic == Some(true) {
        Origin::Hispanic
    } else if race.is_some_and(|r| r.code == "2028-9") {
        Origin::Asian
    } else {
        Origin::General
    };
    let female = match core.gender {
        Gender::Female => true,
        Gender::Male => false,
        _ => rng.chance(0.5),
    };
    let given_names = if female { FEMALE_GIVEN } else { MALE_GIVEN };
    let given = demographics::pick_name(rng, given_names, origin);
    let middle = rng
        .chance(0.5)
        .then(|| demographics::pick_name(rng, given_names, origin))
        .filter(|m| *m != given);
    let family = demographics::pick_name(rng, FAMILY, origin);
    let org = rng.below(pools.orgs);
    let org_info = pools.org_info(org);
    let home: &'static Place = if rng.chance(0.85) {
        org_info.place
    } else {
        rng.weighted(PLACES)
    };
    let hospital = pools.hospital_of(org);
    let hospital_info = pools.org_info(hospital);
    let mut staff = Vec::with_capacity(6);
    let first = rng.below(1 << 20);
    for k in 0..3 {
        let i = pools.practitioner_in(org, first + k);
        staff.push(Staff {
            index: i,
            id: pools.practitioner_id(i),
        });
    }
    let first = rng.below(1 << 20);
    for k in 0..3 {
        let i = pools.practitioner_in(hospital, first + k);
        staff.push(Staff {
            index: i,
            id: pools.practitioner_id(i),
        });
    }
    let language = match origin {
        Origin::Hispanic if rng.chance(0.45) => &SPANISH,
        Origin::Asian if rng.chance(0.3) => rng.pick(ASIAN_LANGUAGES),
        _ if rng.chance(0.02) => rng.pick(OTHER_LANGUAGES),
        _ => &ENGLISH,
    };
    let age_end = time::years_between(core.birth, time::END);
    let p_death = match age_end {
        ..45 => 0.005,
        45..65 => 0.04,
        65..80 => 0.12,
        _ => 0.35,
    };
    let tz = org_info.place.tz;
    let death = if rng.chance(p_death) {
        let from = (core.birth + 30).max(time::RECORDS_START + 365);
        (from < time::END).then(|| {
            let day = rng.range(from, time::END);
            Stamp::at(day, rng.range(0, 23), rng.range(0, 59), tz)
        })
    } else {
        None
    };
    let male_like = !female;
    let adult_height = if male_like {
        rng.normal(176.0, 7.0)
    } else {
        rng.normal(163.0, 6.5)
    }
    .clamp(140.0, 205.0);
    let bmi = rng.normal(27.0, 4.5).clamp(17.0, 50.0);
    // Index in SMOKING_STATUS, by its weights (children are reported as never smokers).
    let smoking = {
        let weights: Vec<(usize, u32)> = SMOKING_STATUS
            .iter()
            .enumerate()
            .map(|(i, (_, w))| (i, *w))
            .collect();
        *rng.weighted(&weights)
    };
    Person {
        index,
        id: population_id(seed, "Patient", index),
        core,
        given,
        middle,
        family,
        home,
        tz,
        org_id: pools.org_id(org),
        org_name: org_info.name,
        hospital_id: pools.org_id(hospital),
        org_is_hospital: hospital == org,
        hospital_name: hospital_info.name,
        clinic_location: pools.location_id(2 * org),
        pharmacy_location: pools.location_id(2 * org + 1),
        hospital_location: pools.location_id(2 * hospital),
        ed_location: pools.location_id(2 * hospital + 1),
        staff,
        mrn: mrn(seed, index),
        origin,
        race,
        hispanic,
        language,
        death,
        adult_height,
        bmi,
        smoking,
    }
}

/// Writes the Patient, and the older duplicate record it replaced when there is one.
pub(super) fn write_patient(seed: u64, p: &Person, rng: &mut Rng, sink: &mut Sink) {
    let old_id = rng
        .chance(0.015)
        .then(|| population_id(seed, "Patient/replaced", p.index));
    let age = p.age_at(p.end());
    let updated = p
        .end()
        .plus(-rng.range(0, 700 * DAY))
        .max(Stamp::at(p.core.birth, 12, 0, p.tz));
    let mut r = sink.begin(Kind::Patient, &p.id, updated, rng.below(1000) as u32);
    write_us_core_extensions(&mut r, p, rng);
    // Everyone has an SSN or a driver's licence besides the MRN, some both.
    let has_licence = age >= 16 && rng.chance(0.7);
    let has_ssn = !has_licence || rng.chance(0.85);
    r.arr("identifier", |j| {
        identifier(j, &p.mrn);
        if has_ssn {
            j.item(|j| {
                j.obj("type", |j| {
                    j.arr("coding", |j| {
                        j.coding_item(&code(V2_0203, "SS", "Social Security number"))
                    })
                });
                j.str("system", SSN);
                j.str_fmt(
                    "value",
                    format_args!("999-{:02}-{:04}", rng.range(10, 99), rng.range(1000, 9999)),
                );
            });
        }
        if has_licence {
            j.item(|j| {
                j.obj("type", |j| {
                    j.arr("coding", |j| {
                        j.coding_item(&code(V2_0203, "DL", "Driver's license number"))
                    })
                });
                j.str_fmt(
                    "system",
                    format_args!(
                        "urn:oid:2.16.840.1.113883.4.3.{}",
                        p.home.fips.trim_start_matches('0')
                    ),
                );
                j.str_fmt("value", format_args!("S99{:07}", rng.range(0, 9_999_999)));
            });
        }
    });
    r.bool("active", true);
    let married = write_names(&mut r, p, age, rng);
    r.arr("telecom", |j| {
        j.item(|j| {
            j.str("system", "phone");
            j.str_fmt(
                "value",
                format_args!("{}-555-{:04}", p.home.area_code, rng.range(100, 9999)),
            );
            j.str("use", "home");
        });
        if age >= 14 && rng.chance(0.6) {
            j.item(|j| {
                j.str("system", "phone");
                j.str_fmt(
                    "value",
                    format_args!("555-{:03}-{:04}", rng.range(200, 999), rng.range(0, 9999)),
                );
                j.str("use", "mobile");
            });
        }
        if age >= 16 && rng.chance(0.4) {
            j.item(|j| {
                j.str("system", "email");
                j.str_fmt(
                    "value",
                    format_args!(
                        "{}.{}{}@example.com",
                        pools::ascii_lower(p.given),
                        pools::ascii_lower(p.family),
                        rng.range(1, 99)
                    ),
                );
            });
        }
    });
    r.str("gender", p.core.gender.fhir());
    r.date("birthDate", Stamp::at_day(p.core.birth, p.tz));
    if let Some(d) = p.death {
        if rng.chance(0.85) {
            r.datetime("deceasedDateTime", d);
        } else {
            r.bool("deceasedBoolean", true);
        }
    }
    pools::write_address(&mut r, rng, p.home, "home");
    let marital = if age < 18 {
        &NEVER_MARRIED
    } else if married {
        &MARRIED
    } else if age >= 70 && rng.chance(0.4) {
        &WIDOWED
    } else if age >= 30 && rng.chance(0.35) {
        &DIVORCED
    } else {
        &NEVER_MARRIED
    };
    r.concept("maritalStatus", marital);
    if rng.chance(0.02) {
        r.bool("multipleBirthBoolean", true);
    }
    r.arr("communication", |j| {
        j.item(|j| {
            j.concept("language", p.language);
            j.bool("preferred", true);
        });
        if p.language != &ENGLISH && rng.chance(0.5) {
            j.item(|j| j.concept("language", &ENGLISH));
        }
    });
    r.reference_list("generalPractitioner", "Practitioner", &p.staff[0].id);
    r.reference("managingOrganization", "Organization", &p.org_id);
    if let Some(old) = &old_id {
        r.arr("link", |j| {
            j.item(|j| {
                j.reference("other", "Patient", old);
                j.str("type", "replaces");
            })
        });
    }
    sink.end(r);

    if let Some(old) = old_id {
        // The record a registration clerk created by mistake, merged into the real one.
        let t = Stamp::at(
            rng.range(time::RECORDS_START, time::END - 30)
                .max(p.core.birth),
            rng.range(8, 17),
            rng.range(0, 59),
            p.tz,
        );
        let mut r = sink.begin(Kind::Patient, &old, t, rng.below(1000) as u32);
        r.arr("identifier", |j| identifier(j, &old_mrn(seed, p.index)));
        r.bool("active", false);
        r.arr("name", |j| {
            j.item(|j| {
                j.str("use", "official");
                j.str("family", p.family);
                j.arr("given", |j| j.item_str(p.given));
            })
        });
        r.str("gender", p.core.gender.fhir());
        r.date("birthDate", Stamp::at_day(p.core.birth, p.tz));
        pools::write_address(&mut r, rng, p.home, "old");
        r.reference("managingOrganization", "Organization", &p.org_id);
        r.arr("link", |j| {
            j.item(|j| {
                j.reference("other", "Patient", &p.id);
                j.str("type", "replaced-by");
            })
        });
        sink.end(r);
    }
}

fn identifier(j: &mut Json, mrn: &str) {
    j.item(|j| {
        j.str("use", "usual");
        j.obj("type", |j| {
            j.arr("coding", |j| {
                j.coding_item(&code(V2_0203, "MR", "Medical record number"))
            });
            j.str("text", "Medical Record Number");
        });
        j.str("system", MRN_SYSTEM);
        j.str("value", mrn);
    });
}

/// Official name (with prefix and suffix sometimes) and, for some married women, a maiden
/// name. Returns whether the patient is married.
fn write_names(r: &mut Json, p: &Person, age: i64, rng: &mut Rng) -> bool {
    let married = age >= 20 && rng.chance(if age >= 30 { 0.55 } else { 0.25 });
    let maiden = (married && p.female() && rng.chance(0.4))
        .then(|| demographics::pick_name(rng, FAMILY, p.origin));
    r.arr("name", |j| {
        j.item(|j| {
            j.str("use", "official");
            j.str("family", p.family);
            j.arr("given", |j| {
                j.item_str(p.given);
                if let Some(m) = p.middle {
                    j.item_str(m);
                }
            });
            if age >= 18 && rng.chance(0.35) {
                let prefix = match (p.core.gender, married) {
                    _ if rng.chance(0.05) => "Dr.",
                    (Gender::Male, _) => "Mr.",
                    (Gender::Female, true) => "Mrs.",
                    (Gender::Female, false) => "Ms.",
                    _ => "Mx.",
                };
                j.arr("prefix", |j| j.item_str(prefix));
            }
            if p.core.gender == Gender::Male && rng.chance(0.02) {
                j.arr("suffix", |j| j.item_str("Jr."));
            }
        });
        if let Some(m) = maiden {
            j.item(|j| {
                j.str("use", "maiden");
                j.str("family", m);
                j.arr("given", |j| j.item_str(p.given));
            });
        }
    });
    married
}

/// US Core race, ethnicity and (mostly) birth sex.
fn write_us_core_extensions(r: &mut Json, p: &Person, rng: &mut Rng) {
    const US_CORE: &str = "http://hl7.org/fhir/us/core/StructureDefinition/";
    let second_race = (p.race.is_some() && rng.chance(0.03))
        .then(|| rng.weighted(RACES).as_ref())
        .flatten()
        .filter(|r| Some(*r) != p.race);
    let birthsex = rng.chance(0.8).then_some(match p.core.gender {
        Gender::Female => "F",
        Gender::Male => "M",
        _ => "UNK",
    });
    r.arr("extension", |j| {
        j.item(|j| {
            j.str_fmt("url", format_args!("{US_CORE}us-core-race"));
            j.arr("extension", |j| {
                let categories: Vec<&Code> = match p.race {
                    Some(r) => std::iter::once(r).chain(second_race).collect(),
                    None => vec![&ASKED_UNKNOWN],
                };
                for c in &categories {
                    j.item(|j| {
                        j.str("url", "ombCategory");
                        j.obj("valueCoding", |j| {
                            j.str("system", c.system);
                            j.str("code", c.code);
                            j.str("display", c.display);
                        });
                    });
                }
                let text = match categories.as_slice() {
                    [one] if one.code == "ASKU" => "Unknown".to_owned(),
                    [one] => one.display.to_owned(),
                    _ => "Multiracial".to_owned(),
                };
                j.item(|j| {
                    j.str("url", "text");
                    j.str("valueString", &text);
                });
            });
        });
        j.item(|j| {
            j.str_fmt("url", format_args!("{US_CORE}us-core-ethnicity"));
            j.arr("extension", |j| {
                let c = match p.hispanic {
                    Some(true) => &HISPANIC,
                    Some(false) => &NOT_HISPANIC,
                    None => &ASKED_UNKNOWN,
                };
                j.item(|j| {
                    j.str("url", "ombCategory");
                    j.obj("valueCoding", |j| {
                        j.str("system", c.system);
                        j.str("code", c.code);
                        j.str("display", c.display);
                    });
                });
                j.item(|j| {
                    j.str("url", "text");
                    j.str(
                        "valueString",
                        if c.code == "ASKU" {
                            "Unknown"
                        } else {
                            c.display
                        },
                    );
                });
            });
        });
        if let Some(sex) = birthsex {
            j.item(|j| {
                j.str_fmt("url", format_args!("{US_CORE}us-core-birthsex"));
                j.str("valueCode", sex);
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn mrns_are_unique_and_stable() {
        let seen: HashSet<String> = (0..200_000).map(|i| mrn(7, i)).collect();
        assert_eq!(seen.len(), 200_000);
        assert_eq!(mrn(7, 5), mrn(7, 5));
        assert_ne!(mrn(7, 5), mrn(8, 5));
        assert!(mrn(7, 5).len() == 13 && mrn(7, 5).bytes().all(|b| b.is_ascii_digit()));
        assert!(!seen.contains(&old_mrn(7, 3)));
    }

    #[test]
    fn cohort_traits_are_plausible() {
        let n = 20_000;
        let cores: Vec<Core> = (0..n).map(|i| core(3, i)).collect();
        let diabetic = cores.iter().filter(|c| c.diabetic).count() as f64 / n as f64;
        let sampled = cores.iter().filter(|c| c.sampled).count() as f64 / n as f64;
        assert!((0.05..0.12).contains(&diabetic), "{diabetic}");
        assert!((0.08..0.12).contains(&sampled), "{sampled}");
        let first = time::days_from_civil(1925, 1, 1);
        let last = time::days_from_civil(2024, 12, 31);
        assert!(cores.iter().all(|c| (first..=last).contains(&c.birth)));
        assert!(cores.iter().any(|c| c.gender == Gender::Other));
    }
}
