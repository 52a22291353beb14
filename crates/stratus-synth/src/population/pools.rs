//! Resources shared by many patients: Organizations, their Locations, Practitioners with one
//! PractitionerRole each, and one Medication per medicine in the code tables.
//!
//! Pool sizes grow with the population but are capped, and every pool resource is a pure
//! function of `(seed, index)`: its id is `population_id(seed, Type, index)` and its content
//! comes from its own random stream. A patient therefore refers to "organization 17" by
//! computing its id, with no table of ids in memory.
//!
//! Layout: every fourth organization (0, 4, 8, ...) is a hospital, the others are clinics
//! belonging to the hospital before them. Organization `o` owns locations `2o` (main site)
//! and `2o + 1` (the emergency department of a hospital, the pharmacy of a clinic).
//! Practitioner `i` works for organization `i % orgs`, and PractitionerRole `i` describes it.

use crate::ids::population_id;
use crate::rng::Rng;

use super::codes::{
    self, CARDIOLOGY, Code, EMERGENCY_MEDICINE, GENERAL_MEDICINE, GENERAL_PRACTICE,
    GENERAL_SURGERY, MEDS, NPI, PEDIATRICS, SPECIALTIES, V2_0203, code,
};
use super::demographics::{self, FAMILY, FEMALE_GIVEN, MALE_GIVEN, PLACES, Place};
use super::sink::{Kind, Sink};
use super::time::{self, Stamp};

/// Random streams of pool resources live above this bit, away from patient streams (which
/// use the patient index) and cohort-trait streams.
const POOL_STREAM: u64 = 1 << 63;

/// Pool sizes for a population.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pools {
    pub seed: u64,
    pub orgs: u64,
    pub practitioners: u64,
}

/// What a patient or a note needs to know about an organization.
pub(super) struct OrgInfo {
    pub name: String,
    pub place: &'static Place,
    pub hospital: bool,
}

/// What a note needs to know about a practitioner.
pub(super) struct PractitionerInfo {
    pub given: &'static str,
    pub family: &'static str,
    pub female: bool,
    /// v2-0360 degree code and display.
    pub degree: (&'static str, &'static str),
}

impl PractitionerInfo {
    /// "Dr. Jane Smith, MD" or "Jane Smith, NP".
    pub fn signature(&self) -> String {
        let doctor = matches!(self.degree.0, "MD" | "DO");
        format!(
            "{}{} {}, {}",
            if doctor { "Dr. " } else { "" },
            self.given,
            self.family,
            self.degree.0
        )
    }
}

const DEGREES: &[((&str, &str), u32)] = &[
    (("MD", "Doctor of Medicine"), 60),
    (("DO", "Doctor of Osteopathy"), 10),
    (("NP", "Nurse practitioner"), 20),
    (("PA", "Physician Assistant"), 10),
];

const ROLE_CODES: &str = "http://terminology.hl7.org/CodeSystem/practitioner-role";
const ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";

impl Pools {
    /// Pools sized for `patients`: one organization per 200 patients (5 to 5,000) and one
    /// practitioner per 50 (10 to 20,000), so that a practitioner sees a few hundred patients
    /// whatever the size, and never fewer practitioners than organizations.
    pub fn new(seed: u64, patients: u64) -> Pools {
        Pools {
            seed,
            orgs: (patients / 200).clamp(5, 5_000),
            practitioners: (patients / 50).clamp(10, 20_000),
        }
    }

    pub fn locations(&self) -> u64 {
        self.orgs * 2
    }

    pub fn medications(&self) -> u64 {
        MEDS.len() as u64
    }

    /// All pool resources, in writing order: organizations, locations, practitioners,
    /// roles, medications.
    pub fn total(&self) -> u64 {
        self.orgs + self.locations() + 2 * self.practitioners + self.medications()
    }

    pub fn org_id(&self, i: u64) -> String {
        population_id(self.seed, "Organization", i)
    }

    pub fn location_id(&self, i: u64) -> String {
        population_id(self.seed, "Location", i)
    }

    pub fn practitioner_id(&self, i: u64) -> String {
        population_id(self.seed, "Practitioner", i)
    }

    pub fn role_id(&self, i: u64) -> String {
        population_id(self.seed, "PractitionerRole", i)
    }

    pub fn medication_id(&self, i: u64) -> String {
        population_id(self.seed, "Medication", i)
    }

    /// The hospital a clinic belongs to (a hospital is its own).
    pub fn hospital_of(&self, org: u64) -> u64 {
        org - org % 4
    }

    /// The `k`-th practitioner of an organization (wrapping around its staff).
    pub fn practitioner_in(&self, org: u64, k: u64) -> u64 {
        let staff = (self.practitioners - org).div_ceil(self.orgs).max(1);
        org + self.orgs * (k % staff)
    }

    fn rng(&self, tag: u64, i: u64) -> Rng {
        Rng::new(self.seed, POOL_STREAM | (tag << 48) | i)
    }

    pub fn org_info(&self, i: u64) -> OrgInfo {
        let mut rng = self.rng(1, i);
        let place: &'static Place = rng.weighted(PLACES);
        let hospital = i.is_multiple_of(4);
        let family = rng.pick(FAMILY).0;
        let name = if hospital {
            match rng.below(3) {
                0 => format!("{} General Hospital", place.city),
                1 => format!("{} Memorial Hospital", family),
                _ => format!("{} Medical Center", place.city),
            }
        } else {
            match rng.below(4) {
                0 => format!("{} Family Medicine", family),
                1 => format!("{} Community Health Center", place.city),
                2 => format!(
                    "{} Primary Care Associates",
                    rng.pick(demographics::STREETS)
                ),
                _ => format!("{} Pediatrics and Internal Medicine", place.city),
            }
        };
        OrgInfo {
            name,
            place,
            hospital,
        }
    }

    pub fn practitioner_info(&self, i: u64) -> PractitionerInfo {
        let mut rng = self.rng(3, i);
        let female = rng.chance(0.5);
        let given = rng.pick(if female { FEMALE_GIVEN } else { MALE_GIVEN }).0;
        let family = rng.pick(FAMILY).0;
        let degree = *rng.weighted(DEGREES);
        PractitionerInfo {
            given,
            family,
            female,
            degree,
        }
    }

    /// The specialty of practitioner `i`, from where they work.
    fn specialty(&self, i: u64) -> &'static Code {
        let org = i % self.orgs;
        let k = i / self.orgs;
        if org.is_multiple_of(4) {
            [
                &EMERGENCY_MEDICINE,
                &GENERAL_MEDICINE,
                &GENERAL_SURGERY,
                &CARDIOLOGY,
            ][(k % 4) as usize]
        } else {
            match k % 5 {
                0 | 1 => &GENERAL_PRACTICE,
                2 => &PEDIATRICS,
                _ => &SPECIALTIES[(6 + (k + org) % 4) as usize],
            }
        }
    }

    /// Writes pool resource number `item` (see [`Pools::total`] for the order).
    pub fn write(&self, item: u64, sink: &mut Sink) {
        let mut i = item;
        if i < self.orgs {
            return self.write_org(i, sink);
        }
        i -= self.orgs;
        if i < self.locations() {
            return self.write_location(i, sink);
        }
        i -= self.locations();
        if i < self.practitioners {
            return self.write_practitioner(i, sink);
        }
        i -= self.practitioners;
        if i < self.practitioners {
            return self.write_role(i, sink);
        }
        i -= self.practitioners;
        self.write_medication(i, sink);
    }

    /// A "last updated" time for pool resources: some time in the final year.
    fn updated(rng: &mut Rng, tz: time::Tz) -> (Stamp, u32) {
        let day = time::END - rng.range(0, 365);
        let t = Stamp::at(day, rng.range(0, 23), rng.range(0, 59), tz);
        (t, rng.below(1000) as u32)
    }

    fn write_org(&self, i: u64, sink: &mut Sink) {
        let info = self.org_info(i);
        let mut rng = self.rng(2, i);
        let (t, ms) = Self::updated(&mut rng, info.place.tz);
        let mut r = sink.begin(Kind::Organization, &self.org_id(i), t, ms);
        r.arr("identifier", |j| {
            j.item(|j| {
                j.obj("type", |j| {
                    j.arr("coding", |j| {
                        j.coding_item(&code(V2_0203, "NPI", "National provider identifier"))
                    })
                });
                j.str("system", NPI);
                j.str("value", &npi(&mut rng));
            })
        });
        r.bool("active", true);
        r.concept_list(
            "type",
            &code(
                "http://terminology.hl7.org/CodeSystem/organization-type",
                "prov",
                "Healthcare Provider",
            ),
        );
        r.str("name", &info.name);
        r.arr("telecom", |j| {
            j.item(|j| {
                j.str("system", "phone");
                j.str_fmt(
                    "value",
                    format_args!("{}-555-{:04}", info.place.area_code, rng.range(100, 9999)),
                );
                j.str("use", "work");
            })
        });
        write_address(&mut r, &mut rng, info.place, "work");
        if !info.hospital {
            r.reference("partOf", "Organization", &self.org_id(self.hospital_of(i)));
        }
        sink.end(r);
    }

    fn write_location(&self, i: u64, sink: &mut Sink) {
        let org = i / 2;
        let info = self.org_info(org);
        let mut rng = self.rng(4, i);
        let (t, ms) = Self::updated(&mut rng, info.place.tz);
        let second = i % 2 == 1;
        let (kind, name) = match (info.hospital, second) {
            (true, false) => (code(ROLE_CODE, "HOSP", "Hospital"), info.name.clone()),
            (true, true) => (
                code(ROLE_CODE, "ER", "Emergency room"),
                format!("{} Emergency Department", info.name),
            ),
            (false, false) => (
                code(ROLE_CODE, "GIM", "General internal medicine clinic"),
                info.name.clone(),
            ),
            (false, true) => (
                code(ROLE_CODE, "PHARM", "Pharmacy"),
                format!("{} Pharmacy", info.name),
            ),
        };
        let mut r = sink.begin(Kind::Location, &self.location_id(i), t, ms);
        r.str("status", "active");
        r.str("name", &name);
        r.str("mode", "instance");
        r.concept_list("type", &kind);
        r.arr("telecom", |j| {
            j.item(|j| {
                j.str("system", "phone");
                j.str_fmt(
                    "value",
                    format_args!("{}-555-{:04}", info.place.area_code, rng.range(100, 9999)),
                );
            })
        });
        r.obj("address", |j| {
            address_fields(j, &mut rng, info.place, "work")
        });
        r.coded(
            "physicalType",
            &code(
                "http://terminology.hl7.org/CodeSystem/location-physical-type",
                if second { "wi" } else { "bu" },
                if second { "Wing" } else { "Building" },
            ),
        );
        r.reference("managingOrganization", "Organization", &self.org_id(org));
        sink.end(r);
    }

    fn write_practitioner(&self, i: u64, sink: &mut Sink) {
        let info = self.practitioner_info(i);
        let org = self.org_info(i % self.orgs);
        let mut rng = self.rng(5, i);
        let (t, ms) = Self::updated(&mut rng, org.place.tz);
        let mut r = sink.begin(Kind::Practitioner, &self.practitioner_id(i), t, ms);
        r.arr("identifier", |j| {
            j.item(|j| {
                j.str("system", NPI);
                j.str("value", &npi(&mut rng));
            })
        });
        r.bool("active", true);
        r.arr("name", |j| {
            j.item(|j| {
                j.str("use", "official");
                j.str("family", info.family);
                j.arr("given", |j| j.item_str(info.given));
                if matches!(info.degree.0, "MD" | "DO") {
                    j.arr("prefix", |j| j.item_str("Dr."));
                }
            })
        });
        r.arr("telecom", |j| {
            j.item(|j| {
                j.str("system", "email");
                j.str_fmt(
                    "value",
                    format_args!(
                        "{}.{}{}@example.org",
                        ascii_lower(info.given),
                        ascii_lower(info.family),
                        i
                    ),
                );
                j.str("use", "work");
            })
        });
        write_address(&mut r, &mut rng, org.place, "work");
        r.str("gender", if info.female { "female" } else { "male" });
        r.arr("qualification", |j| {
            j.item(|j| {
                j.coded(
                    "code",
                    &code(
                        "http://terminology.hl7.org/CodeSystem/v2-0360",
                        info.degree.0,
                        info.degree.1,
                    ),
                );
                j.reference("issuer", "Organization", &self.org_id(i % self.orgs));
            })
        });
        sink.end(r);
    }

    fn write_role(&self, i: u64, sink: &mut Sink) {
        let info = self.practitioner_info(i);
        let org = i % self.orgs;
        let place = self.org_info(org).place;
        let mut rng = self.rng(6, i);
        let (t, ms) = Self::updated(&mut rng, place.tz);
        let mut r = sink.begin(Kind::PractitionerRole, &self.role_id(i), t, ms);
        r.bool("active", true);
        r.reference("practitioner", "Practitioner", &self.practitioner_id(i));
        r.reference("organization", "Organization", &self.org_id(org));
        let role = if matches!(info.degree.0, "MD" | "DO") {
            code(ROLE_CODES, "doctor", "Doctor")
        } else {
            code(ROLE_CODES, "nurse", "Nurse")
        };
        r.concept_list("code", &role);
        r.concept_list("specialty", self.specialty(i));
        r.reference_list("location", "Location", &self.location_id(org * 2));
        r.arr("telecom", |j| {
            j.item(|j| {
                j.str("system", "phone");
                j.str_fmt(
                    "value",
                    format_args!("{}-555-{:04}", place.area_code, rng.range(100, 9999)),
                );
                j.str("use", "work");
            })
        });
        sink.end(r);
    }

    fn write_medication(&self, i: u64, sink: &mut Sink) {
        let Some(m) = MEDS.get(i as usize) else {
            return;
        };
        let mut rng = self.rng(7, i);
        let (t, ms) = Self::updated(&mut rng, time::Tz::EASTERN);
        let mut r = sink.begin(Kind::Medication, &self.medication_id(i), t, ms);
        r.concept("code", &m.code);
        r.str("status", "active");
        if let Some(form) = &m.form {
            r.concept("form", form);
        }
        if let Some((ingredient, mg)) = &m.ingredient {
            r.arr("ingredient", |j| {
                j.item(|j| {
                    j.concept("itemCodeableConcept", ingredient);
                    j.bool("isActive", true);
                    j.obj("strength", |j| {
                        j.quantity(
                            "numerator",
                            *mg,
                            if mg.fract() == 0.0 { 0 } else { 3 },
                            "mg",
                            "mg",
                        );
                        j.obj("denominator", |j| {
                            j.dec("value", 1.0, 0);
                            j.str(
                                "unit",
                                if m.form == Some(codes::CAPSULE) {
                                    "capsule"
                                } else {
                                    "tablet"
                                },
                            );
                            j.str(
                                "system",
                                "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                            );
                            j.str(
                                "code",
                                if m.form == Some(codes::CAPSULE) {
                                    "CAP"
                                } else {
                                    "TAB"
                                },
                            );
                        });
                    });
                })
            });
        }
        sink.end(r);
    }
}

/// A home or work address in a place, as the one item of an `address` list.
pub(super) fn write_address(j: &mut super::json::Json, rng: &mut Rng, place: &Place, use_: &str) {
    j.arr("address", |j| {
        j.item(|j| address_fields(j, rng, place, use_))
    });
}

/// The fields of an address (a Location has one address, not a list of them).
pub(super) fn address_fields(j: &mut super::json::Json, rng: &mut Rng, place: &Place, use_: &str) {
    j.str("use", use_);
    j.arr("line", |j| {
        let line = format!(
            "{} {} {}",
            rng.range(1, 9999),
            rng.pick(demographics::STREETS),
            rng.pick(demographics::STREET_SUFFIXES)
        );
        j.item_str(&line);
        if rng.chance(0.15) {
            j.item_str(&format!("Apt {}", rng.range(1, 40)));
        }
    });
    j.str("city", place.city);
    j.str("state", place.state);
    j.str_fmt(
        "postalCode",
        format_args!("{}{:02}", place.zip3, rng.range(1, 99)),
    );
    j.str("country", "US");
}

/// A syntactically valid NPI: 10 digits whose last is the Luhn check digit over the
/// "80840" prefix plus the first nine (as CMS defines it).
pub(super) fn npi(rng: &mut Rng) -> String {
    let mut digits = [0u8; 10];
    digits[0] = 1 + rng.below(2) as u8;
    for d in digits.iter_mut().take(9).skip(1) {
        *d = rng.below(10) as u8;
    }
    digits[9] = npi_check_digit(&digits[..9]);
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fn npi_check_digit(first9: &[u8]) -> u8 {
    let mut all = vec![8u8, 0, 8, 4, 0];
    all.extend_from_slice(first9);
    let mut sum = 0u32;
    // The check digit will be appended, so the rightmost payload digit is doubled.
    for (k, &d) in all.iter().rev().enumerate() {
        let mut v = d as u32;
        if k % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Lower-case ASCII letters only, for e-mail local parts.
pub(super) fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_check_digit_matches_cms_example() {
        // CMS's worked example: 123456789 → check digit 3.
        assert_eq!(npi_check_digit(&[1, 2, 3, 4, 5, 6, 7, 8, 9]), 3);
        let mut rng = Rng::new(1, 1);
        let n = npi(&mut rng);
        assert_eq!(n.len(), 10);
    }

    #[test]
    fn staff_belong_to_their_org() {
        for patients in [1, 999, 10_000, 5_000_000] {
            let p = Pools::new(7, patients);
            assert!(p.practitioners >= p.orgs);
            for org in [0, p.orgs / 2, p.orgs - 1] {
                for k in 0..5 {
                    let i = p.practitioner_in(org, k);
                    assert!(i < p.practitioners);
                    assert_eq!(i % p.orgs, org);
                }
            }
        }
    }
}
