//! Observations: vital signs (one resource per measurement, blood pressure as a panel with
//! components), laboratory panels (order, specimen, member results, panel Observation with
//! `hasMember`, and the DiagnosticReport), smoking status, a social history narrative and a
//! PHQ-2 survey score.
//!
//! Values are drawn around the patient's own baseline (height, usual BMI) and shifted by
//! their conditions (hypertension raises blood pressure, diabetes glucose and HbA1c, kidney
//! disease creatinine), so that cohort queries over the data find what they should.

use super::clinical::{Gen, Purpose, Visit};
use super::codes::{
    self, ANEMIA, BLOOD_SPECIMEN, BMI, BP_PANEL, CKD, COPD, Code, DIABETES, DIASTOLIC, HEART_RATE,
    HEIGHT, HYPERLIPIDEMIA, HYPERTENSION, HYPOTHYROIDISM, INTERPRETATION, LAB_CATEGORY,
    LAB_ORDER_CATEGORY, Lab, OBESITY, OBS_CATEGORY, PAIN, PHQ2, PREDIABETES, Panel, RESP_RATE,
    SAO2, SMOKING, SMOKING_STATUS, SOCIAL_NARRATIVE, SPO2, SYSTOLIC, TEMPERATURE, URINE_SPECIMEN,
    WEIGHT, code,
};
use super::demographics;
use super::json::Json;
use super::sink::Kind;
use super::time::{HOUR, MINUTE, Stamp};

/// One set of vital signs, kept for the visit's note.
#[derive(Debug, Clone, Copy)]
pub(super) struct Vitals {
    pub systolic: f64,
    pub diastolic: f64,
    pub heart_rate: f64,
    pub resp_rate: f64,
    pub temperature: f64,
    pub spo2: f64,
    pub weight: f64,
    pub height: f64,
}

fn category(j: &mut Json, c: &'static str, display: &'static str) {
    j.arr("category", |j| {
        j.item(|j| {
            j.arr("coding", |j| j.coding_item(&code(OBS_CATEGORY, c, display)));
            j.str("text", display);
        })
    });
}

fn interpretation(j: &mut Json, value: f64, low: f64, high: f64) {
    let (c, d) = if value < low {
        ("L", "Low")
    } else if value > high {
        ("H", "High")
    } else {
        ("N", "Normal")
    };
    j.arr("interpretation", |j| {
        j.item(|j| {
            j.arr("coding", |j| j.coding_item(&code(INTERPRETATION, c, d)));
            j.str("text", d);
        })
    });
}

/// Rounds to the precision that will be written, so interpretation matches the text.
fn round(v: f64, places: usize) -> f64 {
    let f = 10f64.powi(places as i32);
    (v * f).round() / f
}

impl Gen<'_> {
    /// Vital signs appropriate to the kind of visit, remembered for its note.
    pub(super) fn vitals_for(&mut self, v: &Visit) {
        self.vitals = match v.purpose {
            Purpose::Virtual(_) => None,
            Purpose::Wellness => Some(self.vital_set(v, v.at(0.1), true, true)),
            Purpose::Home(_) | Purpose::FollowUp(_) if self.rng.chance(0.7) => {
                let full = self.rng.chance(0.4);
                Some(self.vital_set(v, v.at(0.1), full, false))
            }
            Purpose::Home(_) | Purpose::FollowUp(_) => None,
            Purpose::Acute(_) if self.rng.chance(0.15) => None,
            _ => Some(self.vital_set(v, v.at(0.1), false, true)),
        };
    }

    /// Writes one set of vital signs at `t`. `body` adds height, weight and BMI; `acute`
    /// adds temperature and pain.
    pub(super) fn vital_set(&mut self, v: &Visit, t: Stamp, body: bool, acute: bool) -> Vitals {
        let age = v.age;
        let copd = self.has(COPD, t);
        let htn = self.has(HYPERTENSION, t);
        let rng = &mut self.rng;
        let growth = if age >= 18 {
            1.0
        } else {
            0.3 + 0.7 * (age as f64 / 18.0).powf(0.7)
        };
        let height = (self.p.adult_height * growth + rng.normal(0.0, 0.5)).max(45.0);
        let obese = self
            .plans
            .iter()
            .any(|p| p.table_index == OBESITY && p.onset <= t);
        let bmi = if age < 2 {
            rng.normal(17.0, 1.2)
        } else if age < 18 {
            rng.normal(16.0 + 0.25 * age as f64, 1.5) + if obese { 6.0 } else { 0.0 }
        } else {
            let base = if obese {
                self.p.bmi.max(31.0)
            } else {
                self.p.bmi
            };
            base + rng.normal(0.0, 0.6)
        }
        .clamp(12.0, 60.0);
        let weight = bmi * (height / 100.0).powi(2);
        let fever = v.fever;
        let heart_rate = match age {
            0 => rng.normal(130.0, 12.0),
            1..6 => rng.normal(105.0, 10.0),
            6..13 => rng.normal(90.0, 10.0),
            _ => rng.normal(74.0, 9.0),
        } + if fever { 12.0 } else { 0.0 };
        let resp_rate = match age {
            0 => rng.normal(35.0, 4.0),
            1..6 => rng.normal(24.0, 3.0),
            6..13 => rng.normal(20.0, 2.0),
            _ => rng.normal(15.0, 2.0),
        };
        let temperature = if fever {
            rng.normal(38.6, 0.4)
        } else {
            rng.normal(36.8, 0.25)
        };
        let spo2 = if copd {
            rng.normal(93.0, 2.0)
        } else {
            rng.normal(97.8, 1.0)
        }
        .min(100.0);
        let (systolic, diastolic) = if age < 18 {
            (rng.normal(102.0, 8.0), rng.normal(62.0, 7.0))
        } else {
            (
                rng.normal(116.0 + 0.3 * (age - 30).max(0) as f64, 11.0)
                    + if htn { 18.0 } else { 0.0 },
                rng.normal(75.0, 8.0) + if htn { 9.0 } else { 0.0 },
            )
        };
        let vitals = Vitals {
            systolic: systolic.round(),
            diastolic: diastolic.round().min(systolic.round() - 20.0),
            heart_rate: heart_rate.round().max(40.0),
            resp_rate: resp_rate.round().max(8.0),
            temperature: round(temperature, 1),
            spo2: round(spo2, 0).max(80.0),
            weight: round(weight, 1),
            height: round(height, 1),
        };

        self.vital(
            v,
            t,
            &HEART_RATE,
            None,
            vitals.heart_rate,
            0,
            "beats/minute",
            "/min",
        );
        if age >= 3 {
            self.blood_pressure(v, t, vitals.systolic, vitals.diastolic);
        }
        // Clinics often skip respiratory rate and oxygen saturation in well patients.
        if acute || v.in_hospital || self.rng.chance(0.5) {
            self.vital(
                v,
                t,
                &RESP_RATE,
                None,
                vitals.resp_rate,
                0,
                "breaths/minute",
                "/min",
            );
            self.vital(v, t, &SPO2, Some(&SAO2), vitals.spo2, 0, "%", "%");
        }
        if acute {
            self.vital(
                v,
                t,
                &TEMPERATURE,
                None,
                vitals.temperature,
                1,
                "Cel",
                "Cel",
            );
        }
        if body {
            self.vital(v, t, &HEIGHT, None, vitals.height, 1, "cm", "cm");
            self.vital(v, t, &WEIGHT, None, vitals.weight, 1, "kg", "kg");
            if age >= 2 {
                self.vital(v, t, &BMI, None, round(bmi, 1), 1, "kg/m2", "kg/m2");
            }
        }
        if acute && age >= 4 && self.rng.chance(0.6) {
            let pain = self.rng.range(0, if v.in_hospital { 9 } else { 6 }) as f64;
            self.vital(v, t, &PAIN, None, pain, 0, "{score}", "{score}");
        }
        vitals
    }

    #[allow(clippy::too_many_arguments)]
    fn vital(
        &mut self,
        v: &Visit,
        t: Stamp,
        c: &Code,
        also: Option<&Code>,
        value: f64,
        places: usize,
        unit: &str,
        ucum: &str,
    ) {
        let id = self.rng.uuid();
        let issued = t.plus(self.rng.range(1, 20) * MINUTE);
        let ms = self.rng.below(1000) as u32;
        let mut r = self.open(Kind::Observation, &id, t);
        r.str("status", "final");
        category(&mut r, "vital-signs", "Vital Signs");
        match also {
            Some(a) => r.concept_multi("code", &[c, a], c.display),
            None => r.concept("code", c),
        }
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.instant("issued", issued, ms);
        r.quantity("valueQuantity", value, places, unit, ucum);
        self.close(r);
    }

    fn blood_pressure(&mut self, v: &Visit, t: Stamp, systolic: f64, diastolic: f64) {
        let id = self.rng.uuid();
        let issued = t.plus(self.rng.range(1, 20) * MINUTE);
        let ms = self.rng.below(1000) as u32;
        let flag = self.rng.chance(0.3);
        let mut r = self.open(Kind::Observation, &id, t);
        r.str("status", "final");
        category(&mut r, "vital-signs", "Vital Signs");
        r.concept("code", &BP_PANEL);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.instant("issued", issued, ms);
        r.arr("component", |j| {
            for (c, value, high) in [(&SYSTOLIC, systolic, 130.0), (&DIASTOLIC, diastolic, 80.0)] {
                j.item(|j| {
                    j.concept("code", c);
                    j.quantity("valueQuantity", value, 0, "mm[Hg]", "mm[Hg]");
                    if flag {
                        interpretation(j, value, 0.0, high);
                    }
                });
            }
        });
        self.close(r);
    }

    // ---- laboratory --------------------------------------------------------------------------

    pub(super) fn lab_panel(&mut self, v: &Visit, panel: Panel, reason: Option<&str>) {
        let t = v.at(0.3);
        self.lab_panel_at(v, panel, reason, t);
    }

    /// A lab order and its results: ServiceRequest (most of the time), Specimen (most of
    /// the time), one Observation per test, a panel Observation whose `hasMember` lists
    /// them (for real panels), and the DiagnosticReport.
    pub(super) fn lab_panel_at(&mut self, v: &Visit, panel: Panel, reason: Option<&str>, t: Stamp) {
        let (panel_code, urine) = codes::panel_code(panel);
        let members = codes::panel_members(panel);
        let is_panel = members.len() > 2 || panel == Panel::Urinalysis;
        let staff = self.staff_id(v.staff).to_owned();
        let order = self.rng.chance(0.75).then(|| self.rng.uuid());
        let specimen = self.rng.chance(0.7).then(|| self.rng.uuid());
        let issued = t.plus(self.rng.range(1, 6) * HOUR);

        if let Some(sr) = &order {
            let mut r = self.open(Kind::ServiceRequest, sr, t);
            r.str("status", "completed");
            r.str("intent", "order");
            r.concept_list("category", &LAB_ORDER_CATEGORY);
            r.concept("code", &panel_code);
            r.reference("subject", "Patient", &self.p.id);
            r.reference("encounter", "Encounter", &v.id);
            r.datetime("occurrenceDateTime", t);
            r.datetime("authoredOn", t.plus(-self.rng.range(1, 30) * MINUTE));
            r.reference("requester", "Practitioner", &staff);
            if let Some(reason) = reason {
                r.reference_list("reasonReference", "Condition", reason);
            }
            self.close(r);
        }
        if let Some(sp) = &specimen {
            let accession = self.rng.range(1_000_000, 9_999_999);
            let mut r = self.open(Kind::Specimen, sp, t);
            r.obj("accessionIdentifier", |j| {
                j.str("system", super::ACCESSION_SYSTEM);
                j.str_fmt("value", format_args!("A{accession}"));
            });
            r.str("status", "available");
            r.concept(
                "type",
                if urine {
                    &URINE_SPECIMEN
                } else {
                    &BLOOD_SPECIMEN
                },
            );
            r.reference("subject", "Patient", &self.p.id);
            r.datetime("receivedTime", t.plus(30 * MINUTE));
            if let Some(sr) = &order {
                r.reference_list("request", "ServiceRequest", sr);
            }
            r.obj("collection", |j| {
                j.reference("collector", "Practitioner", &staff);
                j.datetime("collectedDateTime", t);
            });
            self.close(r);
        }
        let mut results = Vec::with_capacity(members.len());
        for lab in members {
            let id = self.rng.uuid();
            let value = round(self.lab_value(lab, t), lab.places);
            self.lab_observation(
                v,
                &id,
                lab,
                value,
                t,
                issued,
                specimen.as_deref(),
                order.as_deref(),
            );
            results.push(id);
        }
        let panel_id = is_panel.then(|| self.rng.uuid());
        if let Some(pid) = &panel_id {
            let ms = self.rng.below(1000) as u32;
            let mut r = self.open(Kind::Observation, pid, issued);
            r.str("status", "final");
            category(&mut r, "laboratory", "Laboratory");
            r.concept("code", &panel_code);
            r.reference("subject", "Patient", &self.p.id);
            r.reference("encounter", "Encounter", &v.id);
            r.datetime("effectiveDateTime", t);
            r.instant("issued", issued, ms);
            r.arr("hasMember", |j| {
                for id in &results {
                    j.reference_item("Observation", id);
                }
            });
            self.close(r);
        }
        let dr = self.rng.uuid();
        let ms = self.rng.below(1000) as u32;
        let mut r = self.open(Kind::DiagnosticReport, &dr, issued);
        if let Some(sr) = &order {
            r.reference_list("basedOn", "ServiceRequest", sr);
        }
        r.str("status", "final");
        r.concept_list("category", &LAB_CATEGORY);
        r.concept("code", &panel_code);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.instant("issued", issued, ms);
        r.reference_list("performer", "Organization", &self.p.hospital_id);
        r.reference_list("resultsInterpreter", "Practitioner", &staff);
        if let Some(sp) = &specimen {
            r.reference_list("specimen", "Specimen", sp);
        }
        r.arr("result", |j| {
            for id in &results {
                j.reference_item("Observation", id);
            }
        });
        self.close(r);
    }

    #[allow(clippy::too_many_arguments)]
    fn lab_observation(
        &mut self,
        v: &Visit,
        id: &str,
        lab: &Lab,
        value: f64,
        t: Stamp,
        issued: Stamp,
        specimen: Option<&str>,
        order: Option<&str>,
    ) {
        let ms = self.rng.below(1000) as u32;
        let ranges = self.rng.chance(0.8);
        let mut r = self.open(Kind::Observation, id, issued);
        if let Some(sr) = order {
            r.reference_list("basedOn", "ServiceRequest", sr);
        }
        r.str("status", "final");
        category(&mut r, "laboratory", "Laboratory");
        r.concept("code", &lab.code);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.instant("issued", issued, ms);
        r.reference_list("performer", "Organization", &self.p.hospital_id);
        r.quantity("valueQuantity", value, lab.places, lab.unit, lab.ucum);
        if ranges {
            interpretation(&mut r, value, lab.low, lab.high);
            r.arr("referenceRange", |j| {
                j.item(|j| {
                    if lab.low > 0.0 {
                        j.quantity("low", lab.low, lab.places, lab.unit, lab.ucum);
                    }
                    j.quantity("high", lab.high, lab.places, lab.unit, lab.ucum);
                })
            });
        }
        if let Some(sp) = specimen {
            r.reference("specimen", "Specimen", sp);
        }
        self.close(r);
    }

    /// A plausible value for a test, shifted by the patient's conditions at `t`.
    fn lab_value(&mut self, lab: &Lab, t: Stamp) -> f64 {
        let diabetic = self.has(DIABETES, t);
        let prediabetic = self.has(PREDIABETES, t);
        let ckd = self.has(CKD, t);
        let anemia = self.has(ANEMIA, t);
        let lipids = self.has(HYPERLIPIDEMIA, t);
        let female = self.p.female();
        let rng = &mut self.rng;
        let v = match lab.code.code {
            "2339-0" if diabetic => rng.normal(155.0, 35.0),
            "2339-0" if prediabetic => rng.normal(108.0, 8.0),
            "2339-0" => rng.normal(90.0, 9.0),
            "4548-4" if diabetic => rng.normal(7.6, 1.1).clamp(5.8, 13.5),
            "4548-4" if prediabetic => rng.normal(6.0, 0.2),
            "4548-4" => rng.normal(5.2, 0.3),
            "2160-0" if ckd => rng.normal(1.9, 0.5),
            "2160-0" => rng.normal(if female { 0.75 } else { 0.95 }, 0.15),
            "33914-3" if ckd => rng.normal(42.0, 10.0),
            "33914-3" => rng.normal(95.0, 14.0),
            "6299-2" if ckd => rng.normal(35.0, 8.0),
            "6299-2" => rng.normal(14.0, 4.0),
            "2823-3" if ckd => rng.normal(4.9, 0.4),
            "2823-3" => rng.normal(4.2, 0.35),
            "2951-2" => rng.normal(139.0, 2.5),
            "2069-3" => rng.normal(102.0, 2.5),
            "20565-8" => rng.normal(25.0, 2.0),
            "49765-1" => rng.normal(9.4, 0.4),
            "6690-2" => rng.normal(7.0, 1.6),
            "789-8" if anemia => rng.normal(3.8, 0.3),
            "789-8" => rng.normal(if female { 4.4 } else { 4.9 }, 0.35),
            "718-7" if anemia => rng.normal(10.3, 0.9),
            "718-7" => rng.normal(if female { 13.3 } else { 15.0 }, 1.0),
            "4544-3" if anemia => rng.normal(31.0, 2.5),
            "4544-3" => rng.normal(if female { 40.0 } else { 44.0 }, 3.0),
            "787-2" if anemia => rng.normal(78.0, 4.0),
            "787-2" => rng.normal(90.0, 4.0),
            "777-3" => rng.normal(250.0, 55.0),
            "2093-3" => rng.normal(185.0, 30.0) + if lipids { 45.0 } else { 0.0 },
            "2571-8" => rng.normal(125.0, 45.0) + if lipids { 60.0 } else { 0.0 },
            "18262-6" => rng.normal(105.0, 25.0) + if lipids { 40.0 } else { 0.0 },
            "2085-9" => rng.normal(if female { 58.0 } else { 48.0 }, 11.0),
            "3016-3"
                if self
                    .plans
                    .iter()
                    .any(|p| p.table_index == HYPOTHYROIDISM && p.onset <= t) =>
            {
                rng.normal(5.5, 2.5)
            }
            "3016-3" => rng.normal(2.0, 0.8),
            "5811-5" => rng.normal(1.018, 0.006),
            "5803-2" => rng.normal(6.0, 0.6),
            _ => (lab.low + lab.high) / 2.0,
        };
        v.max(lab.low * 0.3).max(0.01)
    }

    // ---- social history and surveys ------------------------------------------------------------

    pub(super) fn smoking_status(&mut self, v: &Visit) {
        let status = if v.age < 18 { 0 } else { self.p.smoking };
        let answer = SMOKING_STATUS[status].0;
        let id = self.rng.uuid();
        let t = v.at(0.2);
        let mut r = self.open(Kind::Observation, &id, t);
        r.str("status", "final");
        category(&mut r, "social-history", "Social History");
        r.concept("code", &SMOKING);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.instant("issued", t.plus(5 * MINUTE), 0);
        r.concept("valueCodeableConcept", &answer);
        self.close(r);
    }

    pub(super) fn social_history(&mut self, v: &Visit) {
        let text = format!(
            "{}; {}; {}.",
            self.rng.pick(demographics::HOUSEHOLDS),
            self.rng.pick(demographics::OCCUPATIONS),
            self.rng.pick(demographics::ALCOHOL)
        );
        let id = self.rng.uuid();
        let t = v.at(0.2);
        let mut r = self.open(Kind::Observation, &id, t);
        r.str("status", "final");
        category(&mut r, "social-history", "Social History");
        r.concept("code", &SOCIAL_NARRATIVE);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.str("valueString", &text);
        self.close(r);
    }

    pub(super) fn phq2(&mut self, v: &Visit) {
        let depressed = self.has(codes::DEPRESSION, v.start);
        let score = if depressed {
            self.rng.range(2, 6)
        } else {
            *self.rng.weighted(&[(0i64, 70), (1, 18), (2, 8), (3, 4)])
        };
        let id = self.rng.uuid();
        let t = v.at(0.3);
        let mut r = self.open(Kind::Observation, &id, t);
        r.str("status", "final");
        category(&mut r, "survey", "Survey");
        r.concept("code", &PHQ2);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.int("valueInteger", score);
        self.close(r);
    }
}
