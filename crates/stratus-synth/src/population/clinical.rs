//! A patient's history: long-term conditions planned up front, then a sequence of visits
//! (wellness, follow-up, acute, emergency, admission, virtual, home), each writing its
//! Encounter and what happened in it: diagnoses, prescriptions and fills, procedures,
//! immunizations, allergies, devices, vital signs, labs and notes.
//!
//! Everything a patient produces comes from the patient's own random stream, in a fixed
//! order, so a patient's resources are the same whichever thread makes them. Resource ids
//! are random UUIDs from that stream; only the Patient id is name-derived (Groups need it).

use crate::rng::Rng;

use super::codes::{
    self, ACUTE, ADMISSION, AMB, ATTENDER, CARDIOLOGY, CHECKUP, CHRONIC, CONDITION_CATEGORY,
    CONDITION_CLINICAL, CONDITION_VER, CONSULTATION, Chronic, Code, DIABETES, DISCHARGE_TO,
    ED_VISIT, ELECTIVE, EMER, EMERGENCY_ADMISSION, EMERGENCY_MEDICINE, FOLLOW_UP, FROM_ED, FROM_GP,
    FROM_OUTPATIENT, GENERAL_MEDICINE, GENERAL_PRACTICE, GENERAL_SURGERY, HH, HOME_VISIT, IMP,
    MEDS, ORAL_ROUTE, PEDIATRICS, PREDIABETES, PRIMARY_PERFORMER, Panel, SYMPTOM_VISIT, Setting,
    TELEMEDICINE, VR, WELL_CHILD, age_band, code,
};
use super::observations::Vitals;
use super::patient::{self, Core, Person};
use super::pools::Pools;
use super::sink::{Kind, Res, Sink};
use super::time::{self, DAY, HOUR, MINUTE, Stamp};

/// A long-term condition planned for a patient.
pub(super) struct Planned {
    pub def: &'static Chronic,
    pub table_index: usize,
    pub id: String,
    pub onset: Stamp,
    pub abatement: Option<Stamp>,
    /// When it was put on the problem list.
    pub recorded: Option<Stamp>,
    /// Medicines (indexes in [`MEDS`]) started when recorded.
    pub meds: Vec<usize>,
    pub episode: Option<usize>,
    /// A planned surgery (index in [`ELECTIVE`]) not yet done.
    pub elective: Option<usize>,
}

impl Planned {
    fn active_at(&self, t: Stamp) -> bool {
        self.onset <= t && self.abatement.is_none_or(|a| a > t)
    }
}

/// An episode of care around a long-term condition.
pub(super) struct Episode {
    pub id: String,
    pub kind: Code,
    pub plan: usize,
    pub first: Option<Stamp>,
    pub last: Option<Stamp>,
}

/// Why a visit happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Wellness,
    /// Follow-up of a planned condition (index in `Gen::plans`).
    FollowUp(usize),
    Virtual(usize),
    Home(usize),
    /// An acute problem (index in [`ACUTE`]) seen in clinic.
    Acute(usize),
    Emergency(usize),
    /// Admitted through the emergency department for an acute problem.
    Admitted(usize),
    /// Planned surgery: (plan index, [`ELECTIVE`] index).
    Elective(usize, usize),
}

/// One encounter being generated.
pub(super) struct Visit {
    pub id: String,
    pub purpose: Purpose,
    /// Encounter class (v3-ActCode), type and service type.
    pub class: &'static Code,
    pub kind: &'static Code,
    pub service: &'static Code,
    pub start: Stamp,
    /// `None` while still in progress at the end of the record.
    pub end: Option<Stamp>,
    pub age: i64,
    /// Index in `Person::staff` of the attending practitioner.
    pub staff: usize,
    pub in_hospital: bool,
    /// Conditions (id, SNOMED coding) this visit is about.
    pub reasons: Vec<(String, &'static Code)>,
    pub complaint: &'static str,
    pub plans: Vec<(&'static str, &'static str)>,
    pub fever: bool,
    /// Died during this visit.
    pub died: bool,
}

impl Visit {
    /// The end, or the start when still in progress (for times of things done during it).
    pub fn end_or_start(&self) -> Stamp {
        self.end.unwrap_or(self.start)
    }

    /// A time within the visit, `fraction` of the way through.
    pub fn at(&self, fraction: f64) -> Stamp {
        let end = self.end.unwrap_or(self.start.plus(30 * MINUTE));
        let span = (end.local - self.start.local).max(0) as f64;
        self.start.plus((span * fraction) as i64)
    }
}

/// The generator state for one patient.
pub(super) struct Gen<'a> {
    pub pools: &'a Pools,
    pub rng: Rng,
    pub sink: &'a mut Sink,
    pub p: Person,
    pub plans: Vec<Planned>,
    pub episodes: Vec<Episode>,
    /// Allergies (indexes in [`codes::ALLERGIES`]) not yet recorded, and recorded.
    pub allergies_pending: Vec<usize>,
    pub allergies: Vec<usize>,
    pub vaccine_doses: Vec<u32>,
    /// Day of the last dose of each vaccine.
    pub last_dose: Vec<i64>,
    pub flu_season: i64,
    pub covid_doses: u32,
    /// Latest time anything may carry (end of the last day, or death).
    pub limit: Stamp,
    /// The current visit's vital signs, for its notes.
    pub vitals: Option<Vitals>,
}

/// Generates one patient into `sink` and returns the cohort traits (for Group counts).
pub(super) fn generate_patient(seed: u64, index: u64, pools: &Pools, sink: &mut Sink) -> Core {
    let mut rng = Rng::new(seed, index);
    let person = patient::person(seed, index, pools, &mut rng);
    patient::write_patient(seed, &person, &mut rng, sink);
    let core = person.core;
    let limit = person.end();
    let mut g = Gen {
        pools,
        rng,
        sink,
        p: person,
        plans: Vec::new(),
        episodes: Vec::new(),
        allergies_pending: Vec::new(),
        allergies: Vec::new(),
        vaccine_doses: vec![0; codes::VACCINES.len()],
        last_dose: vec![i64::MIN / 2; codes::VACCINES.len()],
        flu_season: i64::MIN,
        covid_doses: 0,
        limit,
        vitals: None,
    };
    g.plan();
    for day in g.visit_days() {
        g.visit(day);
    }
    g.finish();
    core
}

impl Gen<'_> {
    /// Starts a resource whose clinical time is `t`; `meta.lastUpdated` follows a little
    /// later (never after the end of the record).
    pub fn open(&mut self, kind: Kind, id: &str, t: Stamp) -> Res {
        let mut updated = t.plus(self.rng.range(5 * MINUTE, 2 * DAY));
        let cap = Stamp::at(time::END, 23, 59, self.p.tz);
        if updated > cap {
            updated = if t > cap { t } else { cap };
        }
        let ms = self.rng.below(1000) as u32;
        self.sink.begin(kind, id, updated, ms)
    }

    pub fn close(&mut self, r: Res) {
        self.sink.end(r);
    }

    pub fn staff_id(&self, slot: usize) -> &str {
        &self.p.staff[slot.min(self.p.staff.len() - 1)].id
    }

    /// Whether a planned condition (by table index) is active at `t`.
    pub fn has(&self, table_index: usize, t: Stamp) -> bool {
        self.plans
            .iter()
            .any(|p| p.table_index == table_index && p.active_at(t))
    }

    // ---- planning ---------------------------------------------------------------------------

    fn plan(&mut self) {
        let end = self.p.end();
        let age_end = self.p.age_at(end);
        let band = age_band(age_end);
        for (i, def) in CHRONIC.iter().enumerate() {
            let has = match i {
                DIABETES => self.p.core.diabetic,
                PREDIABETES if self.p.core.diabetic => false,
                _ => age_end >= def.min_onset_age && self.rng.chance(def.prevalence[band]),
            };
            if !has {
                continue;
            }
            let lo = def.min_onset_age.min(age_end);
            let onset_age = lo + ((age_end - lo) as f64 * self.rng.unit().powf(0.7)) as i64;
            let day = (self.p.core.birth + onset_age * 365 + self.rng.range(0, 364))
                .clamp(self.p.core.birth, end.day());
            let onset = Stamp::at(day, self.rng.range(8, 17), self.rng.range(0, 59), self.p.tz);
            let abatement = if self.rng.chance(def.remits) {
                let d = day + self.rng.range(60, (end.day() - day).max(61));
                (d < end.day()).then(|| Stamp::at(d, 12, 0, self.p.tz))
            } else {
                None
            };
            let elective = ELECTIVE
                .iter()
                .position(|(c, ..)| *c == def.snomed.code)
                .filter(|_| self.rng.chance(0.2));
            let id = self.rng.uuid();
            let plan = self.plans.len();
            let episode = match i {
                DIABETES => Some(code(
                    "http://terminology.hl7.org/CodeSystem/episodeofcare-type",
                    "diab",
                    "Post coordinated diabetes program",
                )),
                codes::HEART_FAILURE | codes::CKD => Some(code(
                    "http://terminology.hl7.org/CodeSystem/episodeofcare-type",
                    "hacc",
                    "Home and Community Care",
                )),
                _ => None,
            }
            .map(|kind| {
                self.episodes.push(Episode {
                    id: self.rng.uuid(),
                    kind,
                    plan,
                    first: None,
                    last: None,
                });
                self.episodes.len() - 1
            });
            self.plans.push(Planned {
                def,
                table_index: i,
                id,
                onset,
                abatement,
                recorded: None,
                meds: Vec::new(),
                episode,
                elective,
            });
        }
        let allergies = *self.rng.weighted(&[(0usize, 70), (1, 20), (2, 7), (3, 3)]);
        let total: u64 = codes::ALLERGIES.iter().map(|a| a.weight as u64).sum();
        for _ in 0..allergies {
            let mut x = self.rng.below(total);
            let a = codes::ALLERGIES
                .iter()
                .position(|a| {
                    let hit = x < a.weight as u64;
                    x = x.saturating_sub(a.weight as u64);
                    hit
                })
                .unwrap_or(0);
            if !self.allergies_pending.contains(&a) {
                self.allergies_pending.push(a);
            }
        }
    }

    /// Visit days, sorted: a skewed count (median about 6, a long tail past 50 for the
    /// chronically ill) spread over the record, denser in recent years as EHR data is.
    fn visit_days(&mut self) -> Vec<i64> {
        let start = self.p.core.birth.max(time::RECORDS_START);
        let end = self.limit.day();
        let span = end - start;
        if span <= 0 {
            return Vec::new();
        }
        let old = self.p.age_at(self.limit) >= 65;
        let n = self.rng.normal(1.6, 0.8).exp()
            * (1.0 + 0.15 * self.plans.len() as f64)
            * if old { 1.3 } else { 1.0 };
        let n = (n.round() as i64).clamp(1, 250).min(span / 2 + 1);
        let mut days: Vec<i64> = (0..n)
            .map(|_| start + (span as f64 * self.rng.unit().powf(0.8)) as i64)
            .collect();
        days.sort_unstable();
        days
    }

    // ---- visits -------------------------------------------------------------------------------

    fn choose_purpose(&mut self, t: Stamp, age: i64) -> Purpose {
        let followable: Vec<usize> = (0..self.plans.len())
            .filter(|&i| self.plans[i].recorded.is_some() && self.plans[i].active_at(t))
            .collect();
        let elective = (0..self.plans.len()).find(|&i| {
            let p = &self.plans[i];
            p.elective.is_some()
                && p.recorded.is_some_and(|r| r.plus(180 * DAY) <= t)
                && p.active_at(t)
        });
        let year = t.year();
        let w_well = match age {
            0..3 => 45,
            3..18 => 30,
            _ => 22,
        };
        let n_follow = followable.len().min(4) as u32;
        let w_follow = if n_follow == 0 { 0 } else { 25 + 5 * n_follow };
        let w_virtual = match (n_follow, year) {
            (0, _) => 0,
            (_, 2020..) => 8,
            (_, 2015..) => 2,
            _ => 0,
        };
        let w_home = if n_follow > 0 && age >= 75 { 3 } else { 0 };
        let w_ed = if age >= 65 { 9 } else { 6 };
        let w_elective = if elective.is_some() { 4 } else { 0 };
        let choice = *self.rng.weighted(&[
            (0u8, w_well),
            (1, w_follow),
            (2, w_virtual),
            (3, w_home),
            (4, 30),
            (5, w_ed),
            (6, w_elective),
        ]);
        let pick_followable =
            |rng: &mut Rng| followable[rng.below(followable.len() as u64) as usize];
        match choice {
            1 => Purpose::FollowUp(pick_followable(&mut self.rng)),
            2 => Purpose::Virtual(pick_followable(&mut self.rng)),
            3 => Purpose::Home(pick_followable(&mut self.rng)),
            4 => Purpose::Acute(self.pick_acute(age, year, false)),
            5 => {
                let a = self.pick_acute(age, year, true);
                if self.rng.chance(ACUTE[a].admit) {
                    Purpose::Admitted(a)
                } else {
                    Purpose::Emergency(a)
                }
            }
            6 => match elective {
                Some(plan) => Purpose::Elective(plan, self.plans[plan].elective.unwrap_or(0)),
                None => Purpose::Wellness,
            },
            _ => Purpose::Wellness,
        }
    }

    fn pick_acute(&mut self, age: i64, year: i64, emergency: bool) -> usize {
        let band = age_band(age);
        let weight = |a: &codes::Acute| -> u64 {
            let setting_ok = match a.setting {
                Setting::Both => true,
                Setting::Clinic => !emergency,
                Setting::Emergency => emergency,
            };
            let covid = a.icd10.code == "U07.1";
            if !setting_ok || (covid && year < 2020) {
                0
            } else {
                a.weight[band] as u64
            }
        };
        let total: u64 = ACUTE.iter().map(weight).sum();
        let mut x = self.rng.below(total.max(1));
        for (i, a) in ACUTE.iter().enumerate() {
            let w = weight(a);
            if x < w {
                return i;
            }
            x -= w;
        }
        0
    }

    fn visit(&mut self, day: i64) {
        let age = time::years_between(self.p.core.birth, day);
        let probe = Stamp::at(day, 12, 0, self.p.tz);
        let purpose = self.choose_purpose(probe, age);
        let tz = self.p.tz;
        self.vitals = None;
        let rng = &mut self.rng;
        // Shape: class, type, service, start, duration, who, where.
        let (class, kind, service, start, minutes, staff, in_hospital) = match purpose {
            Purpose::Wellness => (
                &AMB,
                if age < 18 { &WELL_CHILD } else { &CHECKUP },
                if age < 18 {
                    &PEDIATRICS
                } else {
                    &GENERAL_PRACTICE
                },
                office_time(rng, day, tz),
                rng.range(20, 45),
                if rng.chance(0.8) {
                    0
                } else {
                    1 + rng.below(2) as usize
                },
                false,
            ),
            Purpose::FollowUp(_) => (
                &AMB,
                if rng.chance(0.85) {
                    &FOLLOW_UP
                } else {
                    &CONSULTATION
                },
                &GENERAL_MEDICINE,
                office_time(rng, day, tz),
                rng.range(15, 30),
                if rng.chance(0.7) {
                    0
                } else {
                    1 + rng.below(2) as usize
                },
                false,
            ),
            Purpose::Virtual(_) => (
                &VR,
                &TELEMEDICINE,
                &GENERAL_PRACTICE,
                office_time(rng, day, tz),
                rng.range(10, 25),
                0,
                false,
            ),
            Purpose::Home(_) => (
                &HH,
                &HOME_VISIT,
                &GENERAL_PRACTICE,
                office_time(rng, day, tz),
                rng.range(30, 60),
                1 + rng.below(2) as usize,
                false,
            ),
            Purpose::Acute(_) => (
                &AMB,
                if rng.chance(0.8) {
                    &SYMPTOM_VISIT
                } else {
                    &codes::PROBLEM_VISIT
                },
                &GENERAL_PRACTICE,
                office_time(rng, day, tz),
                rng.range(15, 30),
                rng.below(3) as usize,
                false,
            ),
            Purpose::Emergency(_) => (
                &EMER,
                &ED_VISIT,
                &EMERGENCY_MEDICINE,
                Stamp::at(day, rng.range(0, 23), rng.range(0, 59), tz),
                rng.range(90, 480),
                3 + rng.below(3) as usize,
                true,
            ),
            Purpose::Admitted(_) => (
                &IMP,
                &EMERGENCY_ADMISSION,
                &GENERAL_MEDICINE,
                Stamp::at(day, rng.range(0, 23), rng.range(0, 59), tz),
                rng.range(1, 7) * 24 * 60 + rng.range(-300, 300),
                3 + rng.below(3) as usize,
                true,
            ),
            Purpose::Elective(_, e) => (
                &IMP,
                &ADMISSION,
                if ELECTIVE[e].1 == "609588000" || ELECTIVE[e].1 == "52734007" {
                    &GENERAL_SURGERY
                } else {
                    &CARDIOLOGY
                },
                Stamp::at(day, rng.range(6, 8), 15 * rng.range(0, 3), tz),
                rng.range(1, 4) * 24 * 60 + rng.range(-120, 240),
                3 + rng.below(3) as usize,
                true,
            ),
        };
        if start >= self.limit {
            return;
        }
        let mut end = Some(start.plus(minutes * MINUTE));
        let mut died = false;
        if end.is_some_and(|e| e > self.limit) {
            if self.p.death.is_some() {
                end = Some(self.limit);
                died = true;
            } else {
                end = None;
            }
        }
        let status = match self.rng.below(1000) {
            0..10 => "entered-in-error",
            10..20 if !died => "cancelled",
            _ if end.is_none() => "in-progress",
            _ => "finished",
        };
        let mut v = Visit {
            id: self.rng.uuid(),
            purpose,
            class,
            kind,
            service,
            start,
            end: if status == "cancelled" { None } else { end },
            age,
            staff,
            in_hospital,
            reasons: Vec::new(),
            complaint: "",
            plans: Vec::new(),
            fever: false,
            died,
        };
        let happened = matches!(status, "finished" | "in-progress");

        // What the visit is about: an acute problem, a followed condition, or anything
        // newly found on the problem list.
        let mut acute_id = None;
        match purpose {
            Purpose::Acute(a) | Purpose::Emergency(a) | Purpose::Admitted(a) => {
                let id = self.rng.uuid();
                v.reasons.push((id.clone(), &ACUTE[a].snomed));
                v.complaint = ACUTE[a].complaint;
                v.plans.push((ACUTE[a].snomed.display, ACUTE[a].plan));
                v.fever = ACUTE[a].fever && self.rng.chance(0.7);
                acute_id = Some(id);
            }
            Purpose::FollowUp(p)
            | Purpose::Virtual(p)
            | Purpose::Home(p)
            | Purpose::Elective(p, _) => {
                let plan = &self.plans[p];
                v.reasons.push((plan.id.clone(), &plan.def.snomed));
                v.complaint = "follow-up of chronic conditions";
                v.plans.push((plan.def.snomed.display, plan.def.plan));
            }
            Purpose::Wellness => {
                v.complaint = "routine health maintenance";
            }
        }
        let newly: Vec<usize> = if happened {
            (0..self.plans.len())
                .filter(|&i| self.plans[i].recorded.is_none() && self.plans[i].onset <= start)
                .collect()
        } else {
            Vec::new()
        };
        for &i in &newly {
            let plan = &self.plans[i];
            if v.reasons.len() < 3 {
                v.reasons.push((plan.id.clone(), &plan.def.snomed));
            }
            v.plans.push((plan.def.snomed.display, plan.def.plan));
        }
        let episode = match purpose {
            Purpose::FollowUp(p) | Purpose::Virtual(p) | Purpose::Home(p) if happened => {
                self.plans[p].episode
            }
            _ => None,
        };
        if let Some(e) = episode {
            let ep = &mut self.episodes[e];
            ep.first.get_or_insert(start);
            ep.last = Some(v.end_or_start());
        }

        self.write_encounter(&v, status, episode, happened);
        if !happened {
            return;
        }

        // Diagnoses first, so everything after can point at them.
        if let (Some(id), Some(a)) = (&acute_id, acute_index(purpose)) {
            self.write_acute_condition(&v, id, a);
        }
        for &i in &newly {
            self.record_chronic(&v, i);
        }
        if let Some(a) = self.allergies_pending.pop() {
            self.write_allergy(&v, a);
        }

        self.vitals_for(&v);
        match purpose {
            Purpose::Wellness => self.wellness(&v),
            Purpose::FollowUp(p) | Purpose::Virtual(p) | Purpose::Home(p) => self.follow_up(&v, p),
            Purpose::Acute(a) | Purpose::Emergency(a) | Purpose::Admitted(a) => {
                self.acute_care(&v, a, acute_id.as_deref().unwrap_or_default())
            }
            Purpose::Elective(p, e) => self.surgery(&v, p, e),
        }
        self.notes_for(&v);
    }

    fn write_encounter(&mut self, v: &Visit, status: &str, episode: Option<usize>, happened: bool) {
        let (class, kind, service) = (v.class, v.kind, v.service);
        let mut r = self.open(Kind::Encounter, &v.id, v.end_or_start());
        r.str("status", status);
        r.obj("class", |j| {
            j.str("system", class.system);
            j.str("code", class.code);
            j.str("display", class.display);
        });
        r.concept_list("type", kind);
        r.concept("serviceType", service);
        if v.in_hospital && class.code == "EMER" {
            r.concept(
                "priority",
                &code(
                    "http://terminology.hl7.org/CodeSystem/v3-ActPriority",
                    "EM",
                    "emergency",
                ),
            );
        }
        r.reference("subject", "Patient", &self.p.id);
        if let Some(e) = episode {
            r.reference_list("episodeOfCare", "EpisodeOfCare", &self.episodes[e].id);
        }
        let staff = self.staff_id(v.staff).to_owned();
        r.arr("participant", |j| {
            j.item(|j| {
                j.concept_list(
                    "type",
                    if v.in_hospital {
                        &ATTENDER
                    } else {
                        &PRIMARY_PERFORMER
                    },
                );
                j.period("period", v.start, v.end);
                j.reference("individual", "Practitioner", &staff);
            })
        });
        r.period("period", v.start, v.end);
        if let Some(first) = v.reasons.first() {
            // Most systems send the coded reason; some also point at the Condition.
            r.arr("reasonCode", |j| {
                j.item(|j| {
                    j.arr("coding", |j| j.coding_item(first.1));
                    j.str("text", first.1.display);
                })
            });
            // Conditions of visits that did not happen are never written.
            if happened && self.rng.chance(0.5) {
                r.arr("reasonReference", |j| {
                    for (id, _) in &v.reasons {
                        j.reference_item("Condition", id);
                    }
                });
            }
        }
        if class.code == "IMP" {
            if let Some((id, _)) = v.reasons.first().filter(|_| happened) {
                r.arr("diagnosis", |j| {
                    j.item(|j| {
                        j.reference("condition", "Condition", id);
                        j.concept(
                            "use",
                            &code(
                                "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                                "AD",
                                "Admission diagnosis",
                            ),
                        );
                        j.int("rank", 1);
                    })
                });
            }
            let admit = match v.purpose {
                Purpose::Admitted(_) => &FROM_ED,
                _ if self.rng.chance(0.7) => &FROM_OUTPATIENT,
                _ => &FROM_GP,
            };
            let discharge = if v.died {
                code(
                    "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                    "exp",
                    "Expired",
                )
            } else {
                *self.rng.weighted(DISCHARGE_TO)
            };
            let in_progress = v.end.is_none();
            r.obj("hospitalization", |j| {
                j.concept("admitSource", admit);
                if !in_progress {
                    j.concept("dischargeDisposition", &discharge);
                }
            });
        }
        let location = match class.code {
            "EMER" => Some(&self.p.ed_location),
            "IMP" => Some(&self.p.hospital_location),
            "AMB" => Some(&self.p.clinic_location),
            _ => None,
        };
        if let Some(loc) = location {
            r.arr("location", |j| {
                j.item(|j| {
                    j.reference("location", "Location", loc);
                    j.str(
                        "status",
                        if v.end.is_some() {
                            "completed"
                        } else {
                            "active"
                        },
                    );
                    j.period("period", v.start, v.end);
                })
            });
        }
        let provider = if v.in_hospital {
            &self.p.hospital_id
        } else {
            &self.p.org_id
        };
        r.reference("serviceProvider", "Organization", provider);
        self.close(r);
    }

    // ---- conditions ----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn write_condition(
        &mut self,
        v: &Visit,
        id: &str,
        snomed: &Code,
        icd10: &Code,
        problem_list: bool,
        onset: Stamp,
        abatement: Option<Stamp>,
        remission: bool,
    ) {
        let mut r = self.open(Kind::Condition, id, v.start);
        let verification = match self.rng.below(1000) {
            0..5 => "entered-in-error",
            5..35 => "provisional",
            35..45 => "unconfirmed",
            _ => "confirmed",
        };
        // An entered-in-error condition carries no clinical status (FHIR invariant con-5).
        if verification != "entered-in-error" {
            let clinical = match abatement {
                Some(a) if a <= self.limit => {
                    if remission {
                        ("remission", "Remission")
                    } else {
                        ("resolved", "Resolved")
                    }
                }
                _ => ("active", "Active"),
            };
            r.coded(
                "clinicalStatus",
                &code(CONDITION_CLINICAL, clinical.0, clinical.1),
            );
        }
        let ver_display = match verification {
            "entered-in-error" => "Entered in Error",
            "provisional" => "Provisional",
            "unconfirmed" => "Unconfirmed",
            _ => "Confirmed",
        };
        r.coded(
            "verificationStatus",
            &code(CONDITION_VER, verification, ver_display),
        );
        let also_diagnosis = problem_list && self.rng.chance(0.3);
        r.arr("category", |j| {
            if problem_list {
                j.item(|j| {
                    j.arr("coding", |j| {
                        j.coding_item(&code(
                            CONDITION_CATEGORY,
                            "problem-list-item",
                            "Problem List Item",
                        ))
                    })
                });
            }
            if !problem_list || also_diagnosis {
                j.item(|j| {
                    j.arr("coding", |j| {
                        j.coding_item(&code(
                            CONDITION_CATEGORY,
                            "encounter-diagnosis",
                            "Encounter Diagnosis",
                        ))
                    })
                });
            }
        });
        r.concept_multi("code", &[snomed, icd10], snomed.display);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("onsetDateTime", onset);
        // Abatement needs an inactive clinical status (con-4), which entered-in-error lacks.
        if let Some(a) =
            abatement.filter(|a| *a <= self.limit && verification != "entered-in-error")
        {
            r.datetime("abatementDateTime", a);
        }
        r.datetime("recordedDate", v.start);
        let staff = self.staff_id(v.staff).to_owned();
        r.reference("recorder", "Practitioner", &staff);
        self.close(r);
    }

    fn write_acute_condition(&mut self, v: &Visit, id: &str, a: usize) {
        let def = &ACUTE[a];
        let born = Stamp::at_day(self.p.core.birth, self.p.tz);
        let onset = v.start.plus(-self.rng.range(2 * HOUR, 3 * DAY)).max(born);
        let abatement = Some(v.start.plus(self.rng.range(def.days.0, def.days.1) * DAY));
        self.write_condition(
            v,
            id,
            &def.snomed,
            &def.icd10,
            false,
            onset,
            abatement,
            false,
        );
    }

    /// Puts a planned condition on the problem list at this visit and starts its treatment.
    fn record_chronic(&mut self, v: &Visit, i: usize) {
        let (id, def, onset, abatement, table_index) = {
            let p = &self.plans[i];
            (p.id.clone(), p.def, p.onset, p.abatement, p.table_index)
        };
        let remission = matches!(table_index, codes::DEPRESSION | codes::ANXIETY);
        self.write_condition(
            v,
            &id,
            &def.snomed,
            &def.icd10,
            true,
            onset,
            abatement,
            remission,
        );
        let mut meds = Vec::new();
        for (k, m) in def.meds.iter().enumerate() {
            if (k == 0 || self.rng.chance(0.35))
                && let Some(m) = codes::med_index(m)
            {
                meds.push(m);
            }
        }
        for &m in &meds {
            self.prescribe(v, m, Some(&id), None);
        }
        if let Some(d) = def.device.and_then(codes::device)
            && self.rng.chance(if d.implanted { 0.5 } else { 0.8 })
        {
            self.write_device(v, d);
        }
        let p = &mut self.plans[i];
        p.recorded = Some(v.start);
        p.meds = meds;
    }

    // ---- visit content --------------------------------------------------------------------------

    fn wellness(&mut self, v: &Visit) {
        let t = v.at(0.5);
        if v.age >= 18 {
            if self.plans.iter().any(|p| !p.meds.is_empty()) && self.rng.chance(0.5) {
                self.write_procedure_code(v, "430193006", None, t);
            }
            if self.rng.chance(0.15) {
                self.write_procedure_code(v, "710824005", None, t);
            }
            for &(code, min_age, female_only, chance) in codes::SCREENINGS {
                if v.age >= min_age && (!female_only || self.p.female()) && self.rng.chance(chance)
                {
                    self.write_procedure_code(v, code, None, v.at(0.8));
                }
            }
        }
        if v.age >= 12 && self.rng.chance(0.4) {
            self.write_procedure_code(v, "171207006", None, t);
            self.phq2(v);
        }
        if v.age >= 13 && self.rng.chance(0.6) {
            self.smoking_status(v);
        }
        if v.age >= 18 && self.rng.chance(0.15) {
            self.social_history(v);
        }
        if v.age >= 40 && self.rng.chance(0.3) {
            self.lab_panel(v, Panel::Lipid, None);
        }
        if self.rng.chance(0.15) {
            self.lab_panel(v, Panel::Cbc, None);
        }
        if v.age >= 35 && self.rng.chance(0.2) {
            self.lab_panel(v, Panel::Metabolic, None);
        }
        self.immunizations(v, true);
    }

    fn follow_up(&mut self, v: &Visit, plan: usize) {
        let (id, def, meds) = {
            let p = &self.plans[plan];
            (p.id.clone(), p.def, p.meds.clone())
        };
        if !matches!(v.purpose, Purpose::Virtual(_)) {
            for &panel in def.labs {
                if self.rng.chance(0.45) {
                    self.lab_panel(v, panel, Some(&id));
                }
            }
        }
        for m in meds {
            if self.rng.chance(0.5) {
                self.prescribe(v, m, Some(&id), None);
            }
        }
        if self.rng.chance(0.3) {
            self.write_procedure_code(v, "428191000124101", None, v.at(0.5));
        }
        if self.rng.chance(0.25) && !matches!(v.purpose, Purpose::Virtual(_)) {
            self.immunizations(v, false);
        }
    }

    fn acute_care(&mut self, v: &Visit, a: usize, condition: &str) {
        let def = &ACUTE[a];
        let hospital = v.in_hospital;
        for &panel in def.labs {
            if self.rng.chance(if hospital { 0.9 } else { 0.4 }) {
                self.lab_panel(v, panel, Some(condition));
            }
        }
        for p in def.procedures {
            let chance = if hospital { 0.9 } else { 0.6 };
            if self.rng.chance(chance) {
                let t = v.at(0.4);
                if let Some(def) = codes::procedure(p) {
                    self.write_procedure(v, def, Some(condition), t);
                    if matches!(*p, "399208008" | "29303009") {
                        self.imaging_report(v, p, condition, t);
                    }
                }
            }
        }
        if let Some(m) = def.meds.first().and_then(|m| codes::med_index(m))
            && self.rng.chance(0.75)
        {
            let days = def.days.0.clamp(3, 14);
            self.prescribe(v, m, Some(condition), Some(days));
        }
        if matches!(v.purpose, Purpose::Admitted(_)) {
            self.inpatient_days(v, Some(condition));
        } else if !hospital && self.rng.chance(0.15) {
            self.immunizations(v, false);
        }
    }

    fn surgery(&mut self, v: &Visit, plan: usize, e: usize) {
        let (_, surgery, device) = ELECTIVE[e];
        let id = self.plans[plan].id.clone();
        self.plans[plan].elective = None;
        self.lab_panel(v, Panel::Cbc, Some(&id));
        self.lab_panel(v, Panel::Metabolic, Some(&id));
        if let Some(def) = codes::procedure(surgery) {
            let t = v.start.plus(2 * HOUR);
            self.write_procedure(v, def, Some(&id), t);
        }
        if let Some(d) = device.and_then(codes::device) {
            self.write_device(v, d);
        }
        self.inpatient_days(v, Some(&id));
    }

    /// Daily vital signs and labs for the days of a stay after the first.
    fn inpatient_days(&mut self, v: &Visit, reason: Option<&str>) {
        let Some(end) = v.end else { return };
        let days = ((end.local - v.start.local) / DAY).min(10);
        for d in 1..=days {
            let t = v.start.plus(d * DAY).plus(self.rng.range(-2, 2) * HOUR);
            if t >= end {
                break;
            }
            self.vital_set(v, t, false, false);
            if self.rng.chance(0.6) {
                self.lab_panel_at(v, Panel::Metabolic, reason, t);
            }
        }
        if !v.died && self.rng.chance(0.5) {
            // Discharge medicine.
            if let Some(m) = codes::med_index("313782") {
                self.prescribe_as(v, m, reason, Some(7), "discharge", end);
            }
        }
    }

    // ---- medicines ----------------------------------------------------------------------------

    fn prescribe(&mut self, v: &Visit, m: usize, reason: Option<&str>, course_days: Option<i64>) {
        let category =
            if v.in_hospital && matches!(v.purpose, Purpose::Admitted(_) | Purpose::Elective(..)) {
                "inpatient"
            } else {
                "outpatient"
            };
        self.prescribe_as(v, m, reason, course_days, category, v.at(0.7));
    }

    /// A MedicationRequest and its fills. Chronic medicines (`course_days` `None`) get
    /// monthly fills; courses get one.
    fn prescribe_as(
        &mut self,
        v: &Visit,
        m: usize,
        reason: Option<&str>,
        course_days: Option<i64>,
        category: &str,
        authored: Stamp,
    ) {
        let med = &MEDS[m];
        let id = self.rng.uuid();
        let by_reference = self.rng.chance(0.3);
        let med_ref = by_reference.then(|| self.pools.medication_id(m as u64));
        let status = match self.rng.below(1000) {
            0..5 => "entered-in-error",
            5..15 => "cancelled",
            _ => {
                let recent = (self.limit.local - authored.local) < 400 * DAY;
                match course_days {
                    Some(d) if authored.plus(d * DAY) > self.limit && self.p.death.is_none() => {
                        "active"
                    }
                    Some(_) => "completed",
                    None if recent && self.p.death.is_none() => "active",
                    None if self.rng.chance(0.2) => "stopped",
                    None => "completed",
                }
            }
        };
        let tablets = matches!(med.form, Some(f) if f == codes::TABLET || f == codes::CAPSULE);
        let (unit, ucum) = if med.form == Some(codes::CAPSULE) {
            ("capsule", "{cap}")
        } else {
            ("tablet", "{tbl}")
        };
        let supply_days = course_days.unwrap_or(30);
        let quantity = (med.per_day as i64 * supply_days) as f64;
        let repeats = if course_days.is_some() {
            0
        } else {
            self.rng.range(0, 5)
        };
        let as_needed = med.sig.contains("as needed");
        let mut r = self.open(Kind::MedicationRequest, &id, authored);
        r.str("status", status);
        r.str("intent", "order");
        let (cat_code, cat_display) = match category {
            "inpatient" => ("inpatient", "Inpatient"),
            "discharge" => ("discharge", "Discharge"),
            _ => ("outpatient", "Outpatient"),
        };
        r.concept_list(
            "category",
            &code(
                "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                cat_code,
                cat_display,
            ),
        );
        match &med_ref {
            Some(mid) => r.reference("medicationReference", "Medication", mid),
            None => r.concept("medicationCodeableConcept", &med.code),
        }
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("authoredOn", authored);
        let staff = self.staff_id(v.staff).to_owned();
        r.reference("requester", "Practitioner", &staff);
        if let Some(reason) = reason {
            if self.rng.chance(0.8) {
                r.reference_list("reasonReference", "Condition", reason);
            } else if let Some((_, c)) = v.reasons.iter().find(|(i, _)| i == reason) {
                r.concept_list("reasonCode", c);
            }
        }
        r.arr("dosageInstruction", |j| {
            j.item(|j| {
                j.int("sequence", 1);
                j.str("text", med.sig);
                j.obj("timing", |j| {
                    j.obj("repeat", |j| {
                        j.int("frequency", med.per_day as i64);
                        j.int("period", 1);
                        j.str("periodUnit", "d");
                    })
                });
                j.bool("asNeededBoolean", as_needed);
                if med.oral {
                    j.concept("route", &ORAL_ROUTE);
                }
                if tablets {
                    j.arr("doseAndRate", |j| {
                        j.item(|j| {
                            j.coded(
                                "type",
                                &code(
                                    "http://terminology.hl7.org/CodeSystem/dose-rate-type",
                                    "ordered",
                                    "Ordered",
                                ),
                            );
                            j.quantity("doseQuantity", 1.0, 0, unit, ucum);
                        })
                    });
                }
            })
        });
        r.obj("dispenseRequest", |j| {
            j.int("numberOfRepeatsAllowed", repeats);
            if tablets {
                j.quantity("quantity", quantity, 0, unit, ucum);
            }
            j.obj("expectedSupplyDuration", |j| {
                j.quantity_fields(supply_days as f64, 0, "days", "d")
            });
        });
        self.close(r);

        if matches!(status, "entered-in-error" | "cancelled") || category == "inpatient" {
            return;
        }
        let fills = if course_days.is_some() {
            if self.rng.chance(0.85) { 1 } else { 0 }
        } else {
            self.rng.range(1, 3)
        };
        let mut when = authored.plus(self.rng.range(1, 48) * HOUR);
        for fill in 0..fills {
            if when > self.limit {
                break;
            }
            self.write_dispense(
                &id,
                m,
                med_ref.as_deref(),
                when,
                supply_days,
                quantity,
                tablets,
                fill == 0,
            );
            when = when.plus(supply_days * DAY + self.rng.range(-2, 5) * DAY);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_dispense(
        &mut self,
        request: &str,
        m: usize,
        med_ref: Option<&str>,
        when: Stamp,
        days: i64,
        quantity: f64,
        tablets: bool,
        first: bool,
    ) {
        let med = &MEDS[m];
        let id = self.rng.uuid();
        let prepared = when.plus(-self.rng.range(10, 180) * MINUTE);
        let mut r = self.open(Kind::MedicationDispense, &id, when);
        r.str("status", "completed");
        match med_ref {
            Some(mid) => r.reference("medicationReference", "Medication", mid),
            None => r.concept("medicationCodeableConcept", &med.code),
        }
        r.reference("subject", "Patient", &self.p.id);
        r.reference_list("authorizingPrescription", "MedicationRequest", request);
        r.concept(
            "type",
            &if first {
                code(codes::V3_ACT_CODE, "FF", "First Fill")
            } else {
                code(codes::V3_ACT_CODE, "RF", "Refill")
            },
        );
        if !self.p.org_is_hospital {
            r.reference("location", "Location", &self.p.pharmacy_location);
        }
        if tablets {
            let unit = if med.form == Some(codes::CAPSULE) {
                ("capsule", "{cap}")
            } else {
                ("tablet", "{tbl}")
            };
            r.quantity("quantity", quantity, 0, unit.0, unit.1);
        } else {
            r.quantity("quantity", 1.0, 0, "package", "{package}");
        }
        r.obj("daysSupply", |j| {
            j.quantity_fields(days as f64, 0, "days", "d")
        });
        r.datetime("whenPrepared", prepared);
        r.datetime("whenHandedOver", when);
        r.arr("dosageInstruction", |j| {
            j.item(|j| {
                j.int("sequence", 1);
                j.str("text", med.sig);
            })
        });
        self.close(r);
    }

    // ---- procedures, immunizations, allergies, devices ------------------------------------------

    fn write_procedure_code(&mut self, v: &Visit, snomed: &str, reason: Option<&str>, t: Stamp) {
        if let Some(def) = codes::procedure(snomed) {
            self.write_procedure(v, def, reason, t);
        }
    }

    fn write_procedure(
        &mut self,
        v: &Visit,
        def: &codes::ProcedureDef,
        reason: Option<&str>,
        t: Stamp,
    ) {
        let id = self.rng.uuid();
        let end = t.plus(def.minutes * MINUTE);
        let mut r = self.open(Kind::Procedure, &id, end);
        r.str("status", "completed");
        r.concept(
            "category",
            &if def.surgical {
                code(codes::SNOMED, "387713003", "Surgical procedure")
            } else {
                code(codes::SNOMED, "103693007", "Diagnostic procedure")
            },
        );
        r.concept("code", &def.code);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        if def.minutes >= 30 || self.rng.chance(0.5) {
            r.period("performedPeriod", t, Some(end));
        } else {
            r.datetime("performedDateTime", t);
        }
        let staff = self.staff_id(v.staff).to_owned();
        r.arr("performer", |j| {
            j.item(|j| j.reference("actor", "Practitioner", &staff))
        });
        let location = if v.in_hospital {
            Some(&self.p.hospital_location)
        } else if v.purpose == Purpose::Wellness
            || matches!(v.purpose, Purpose::Acute(_) | Purpose::FollowUp(_))
        {
            Some(&self.p.clinic_location)
        } else {
            None
        };
        if let Some(l) = location {
            r.reference("location", "Location", l);
        }
        if let Some(reason) = reason {
            r.reference_list("reasonReference", "Condition", reason);
        }
        self.close(r);
        if def.surgical && self.rng.chance(0.8) {
            self.procedure_note(v, def, end);
        }
    }

    /// Vaccines due at a visit. `routine` visits (wellness) catch up on the schedule; any
    /// visit may give a flu or COVID-19 shot in season.
    fn immunizations(&mut self, v: &Visit, routine: bool) {
        let day = v.start.day();
        let months = time::years_between(self.p.core.birth, day) * 12
            + ((day - self.p.core.birth).rem_euclid(365) / 30);
        let year = v.start.year();
        for (i, vax) in codes::VACCINES.iter().enumerate() {
            if !routine {
                break;
            }
            // Adult vaccines are given to some adults only, and boosters years apart.
            let adult = vax.min_months >= 228;
            let gap = if vax.code.code == "113" { 3650 } else { 28 };
            if months >= vax.min_months
                && months <= vax.max_months
                && year >= vax.from_year
                && self.vaccine_doses[i] < vax.doses
                && day - self.last_dose[i] >= gap
                && self.rng.chance(if adult { 0.12 } else { 0.85 })
            {
                self.vaccine_doses[i] += 1;
                self.last_dose[i] = day;
                self.write_immunization(v, &vax.code, months);
            }
        }
        // Flu shots in season (September to March), once per season.
        let season = if v.start.month() >= 8 { year } else { year - 1 };
        let in_season = matches!(v.start.month(), 9..=12 | 1..=3);
        if months >= 6
            && in_season
            && season > self.flu_season
            && year >= 2004
            && self.rng.chance(0.55)
        {
            self.flu_season = season;
            self.write_immunization(v, &codes::FLU, months);
        }
        if year >= 2021 && months >= 60 && self.covid_doses < 3 && self.rng.chance(0.4) {
            self.covid_doses += 1;
            self.write_immunization(v, &codes::COVID, months);
        }
    }

    fn write_immunization(&mut self, v: &Visit, vaccine: &Code, months: i64) {
        let id = self.rng.uuid();
        let t = v.at(0.6);
        let primary = self.rng.chance(0.92);
        let not_done = self.rng.chance(0.02);
        let oral = vaccine.code == "116";
        let subcutaneous = matches!(vaccine.code, "03" | "21");
        let mut r = self.open(Kind::Immunization, &id, t);
        r.str("status", if not_done { "not-done" } else { "completed" });
        if not_done {
            r.concept(
                "statusReason",
                &code(
                    "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "PATOBJ",
                    "patient objection",
                ),
            );
        }
        r.concept("vaccineCode", vaccine);
        r.reference("patient", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("occurrenceDateTime", t);
        r.datetime("recorded", t.plus(self.rng.range(1, 30) * MINUTE));
        r.bool("primarySource", primary);
        if !primary {
            r.concept(
                "reportOrigin",
                &code(
                    "http://terminology.hl7.org/CodeSystem/immunization-origin",
                    "recall",
                    "Parent/Guardian/Patient Recall",
                ),
            );
        }
        if !not_done {
            if primary {
                r.reference("location", "Location", &self.p.clinic_location);
                r.str_fmt(
                    "lotNumber",
                    format_args!(
                        "{}{:05}",
                        ["EK", "FA", "U0", "AB", "LT"][self.rng.below(5) as usize],
                        self.rng.range(0, 99_999)
                    ),
                );
                r.date("expirationDate", t.plus(self.rng.range(90, 700) * DAY));
            }
            let site = match (months < 36, self.rng.chance(0.5)) {
                (true, true) => ("LT", "left thigh"),
                (true, false) => ("RT", "right thigh"),
                (false, true) => ("LA", "left arm"),
                (false, false) => ("RA", "right arm"),
            };
            if !oral {
                r.concept(
                    "site",
                    &code(
                        "http://terminology.hl7.org/CodeSystem/v3-ActSite",
                        site.0,
                        site.1,
                    ),
                );
            }
            let route = if oral {
                ("PO", "Swallow, oral")
            } else if subcutaneous {
                ("SQ", "Injection, subcutaneous")
            } else {
                ("IM", "Injection, intramuscular")
            };
            r.concept(
                "route",
                &code(
                    "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
                    route.0,
                    route.1,
                ),
            );
            r.quantity("doseQuantity", if oral { 2.0 } else { 0.5 }, 1, "mL", "mL");
            if primary {
                let staff = self.staff_id(v.staff).to_owned();
                r.arr("performer", |j| {
                    j.item(|j| j.reference("actor", "Practitioner", &staff))
                });
            }
        }
        self.close(r);
    }

    fn write_allergy(&mut self, v: &Visit, a: usize) {
        let def = &codes::ALLERGIES[a];
        let id = self.rng.uuid();
        let confirmed = self.rng.chance(0.8);
        let intolerance = def.category == "medication" && self.rng.chance(0.3);
        let reaction = *self.rng.pick(def.reactions);
        let severe = reaction.code == "39579001";
        let onset_day = self.rng.range(self.p.core.birth, v.start.day());
        let mut r = self.open(Kind::AllergyIntolerance, &id, v.start);
        r.coded(
            "clinicalStatus",
            &code(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "active",
                "Active",
            ),
        );
        r.coded(
            "verificationStatus",
            &if confirmed {
                code(
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "confirmed",
                    "Confirmed",
                )
            } else {
                code(
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "unconfirmed",
                    "Unconfirmed",
                )
            },
        );
        r.str(
            "type",
            if intolerance {
                "intolerance"
            } else {
                "allergy"
            },
        );
        r.arr("category", |j| j.item_str(def.category));
        r.str(
            "criticality",
            if severe || def.severe { "high" } else { "low" },
        );
        r.concept("code", &def.code);
        r.reference("patient", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.date("onsetDateTime", Stamp::at_day(onset_day, self.p.tz));
        r.datetime("recordedDate", v.start);
        let staff = self.staff_id(v.staff).to_owned();
        r.reference("recorder", "Practitioner", &staff);
        r.arr("reaction", |j| {
            j.item(|j| {
                j.arr("manifestation", |j| {
                    j.item(|j| {
                        j.arr("coding", |j| j.coding_item(&reaction));
                        j.str("text", reaction.display);
                    })
                });
                j.str(
                    "severity",
                    if severe {
                        "severe"
                    } else if confirmed {
                        "moderate"
                    } else {
                        "mild"
                    },
                );
            })
        });
        self.close(r);
        self.allergies.push(a);
        if def.severe
            && let Some(m) = codes::med_index("1870230")
        {
            self.prescribe(v, m, None, Some(365));
        }
    }

    fn write_device(&mut self, v: &Visit, d: &codes::DeviceDef) {
        let id = self.rng.uuid();
        let t = v.at(0.5);
        let made = t.plus(-self.rng.range(30, 400) * DAY);
        let expires = made.plus(self.rng.range(3, 10) * 365 * DAY);
        let gtin = gtin14(&mut self.rng);
        let lot = format!("{:08}", self.rng.range(0, 99_999_999));
        let serial = format!("{:012}", self.rng.range(0, 999_999_999_999));
        let yymmdd = |s: Stamp| {
            let (y, m, d) = time::civil_from_days(s.day());
            format!("{:02}{:02}{:02}", y % 100, m, d)
        };
        let hrf = format!(
            "(01){gtin}(11){}(17){}(10){lot}(21){serial}",
            yymmdd(made),
            yymmdd(expires)
        );
        let mut r = self.open(Kind::Device, &id, t);
        r.arr("udiCarrier", |j| {
            j.item(|j| {
                j.str("deviceIdentifier", &gtin);
                j.str("issuer", "http://hl7.org/fhir/NamingSystem/gs1-di");
                j.str("jurisdiction", "http://hl7.org/fhir/NamingSystem/fda-udi");
                j.str("carrierHRF", &hrf);
            })
        });
        r.str("status", if v.died { "inactive" } else { "active" });
        r.str("distinctIdentifier", &serial);
        r.str("manufacturer", d.manufacturer);
        r.datetime("manufactureDate", made);
        r.datetime("expirationDate", expires);
        r.str("lotNumber", &lot);
        r.str("serialNumber", &serial);
        r.arr("deviceName", |j| {
            j.item(|j| {
                j.str("name", d.model);
                j.str("type", "model-name");
            })
        });
        r.str("modelNumber", d.model);
        r.concept("type", &d.code);
        r.reference("patient", "Patient", &self.p.id);
        self.close(r);
    }

    // ---- end of record --------------------------------------------------------------------------

    /// Conditions whose onset came after the last visit still exist in the record (entered
    /// from outside information), and episodes of care are written once their span is known.
    fn finish(&mut self) {
        for i in 0..self.plans.len() {
            if self.plans[i].recorded.is_some() {
                continue;
            }
            let p = &self.plans[i];
            let (id, def, onset, abatement) = (p.id.clone(), p.def, p.onset, p.abatement);
            let t = onset.min(self.limit);
            let staff = self.staff_id(0).to_owned();
            let mut r = self.open(Kind::Condition, &id, t);
            let clinical = match abatement {
                Some(a) if a <= self.limit => ("resolved", "Resolved"),
                _ => ("active", "Active"),
            };
            r.coded(
                "clinicalStatus",
                &code(CONDITION_CLINICAL, clinical.0, clinical.1),
            );
            r.coded(
                "verificationStatus",
                &code(CONDITION_VER, "unconfirmed", "Unconfirmed"),
            );
            r.arr("category", |j| {
                j.item(|j| {
                    j.arr("coding", |j| {
                        j.coding_item(&code(
                            CONDITION_CATEGORY,
                            "problem-list-item",
                            "Problem List Item",
                        ))
                    })
                })
            });
            r.concept_multi("code", &[&def.snomed, &def.icd10], def.snomed.display);
            r.reference("subject", "Patient", &self.p.id);
            r.datetime("onsetDateTime", onset);
            if let Some(a) = abatement.filter(|a| *a <= self.limit) {
                r.datetime("abatementDateTime", a);
            }
            r.datetime("recordedDate", t);
            r.reference("asserter", "Practitioner", &staff);
            self.close(r);
            self.plans[i].recorded = Some(t);
        }
        for e in 0..self.episodes.len() {
            let ep = &self.episodes[e];
            let plan = &self.plans[ep.plan];
            let start = ep
                .first
                .or(plan.recorded)
                .unwrap_or(plan.onset)
                .min(self.limit);
            let ended = self.p.death.is_some() || plan.abatement.is_some_and(|a| a <= self.limit);
            let end = ended.then(|| ep.last.unwrap_or(start).max(start));
            let (id, kind, condition) = (ep.id.clone(), ep.kind, plan.id.clone());
            let manager = self.staff_id(0).to_owned();
            let mut r = self.open(Kind::EpisodeOfCare, &id, end.unwrap_or(start));
            r.str("status", if ended { "finished" } else { "active" });
            r.concept_list("type", &kind);
            r.arr("diagnosis", |j| {
                j.item(|j| {
                    j.reference("condition", "Condition", &condition);
                    j.concept(
                        "role",
                        &code(
                            "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                            "CM",
                            "Comorbidity diagnosis",
                        ),
                    );
                    j.int("rank", 1);
                })
            });
            r.reference("patient", "Patient", &self.p.id);
            r.reference("managingOrganization", "Organization", &self.p.org_id);
            r.period("period", start, end);
            r.reference("careManager", "Practitioner", &manager);
            self.close(r);
        }
    }
}

fn acute_index(p: Purpose) -> Option<usize> {
    match p {
        Purpose::Acute(a) | Purpose::Emergency(a) | Purpose::Admitted(a) => Some(a),
        _ => None,
    }
}

/// A weekday-looking office time: 8:00 to 16:45 in quarter hours.
fn office_time(rng: &mut Rng, day: i64, tz: time::Tz) -> Stamp {
    Stamp::at(day, rng.range(8, 16), 15 * rng.range(0, 3), tz)
}

/// A GS1 GTIN-14 with a correct check digit.
fn gtin14(rng: &mut Rng) -> String {
    let mut digits = [0u8; 14];
    digits[0] = 0;
    digits[1] = 0;
    for d in digits.iter_mut().take(13).skip(2) {
        *d = rng.below(10) as u8;
    }
    let sum: u32 = digits[..13]
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| d as u32 * if k % 2 == 0 { 3 } else { 1 })
        .sum();
    digits[13] = ((10 - sum % 10) % 10) as u8;
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_check_digit() {
        let mut rng = Rng::new(1, 2);
        for _ in 0..100 {
            let g = gtin14(&mut rng);
            let d: Vec<u32> = g.bytes().map(|b| (b - b'0') as u32).collect();
            let sum: u32 = d
                .iter()
                .rev()
                .enumerate()
                .map(|(k, &x)| if k % 2 == 1 { 3 * x } else { x })
                .sum();
            assert_eq!(sum % 10, 0, "{g}");
        }
    }
}
