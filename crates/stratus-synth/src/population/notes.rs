//! Clinical notes: DocumentReferences whose text is built from templates around what the
//! visit was about, delivered the ways real exports deliver them: inline `text/plain` or
//! `text/html`, or a `Binary/{id}` URL to a separate Binary (plain text or PDF); plus
//! narrative DiagnosticReports (imaging, ECG) with an inline `presentedForm`.
//!
//! Notes deliberately contain identifiers (name, MRN, date of birth, dates of service),
//! because the de-identification and NLP stages downstream are tested on them.

use super::clinical::{Gen, Purpose, Visit};
use super::codes::{
    self, CARDIOLOGY_CATEGORY, CLINICAL_NOTE, CONSULT_NOTE, Code, DISCHARGE_SUMMARY, ED_NOTE,
    EKG_REPORT, HISTORY_AND_PHYSICAL, IMAGING_ORDER_CATEGORY, IMAGING_REPORT, MEDS, PROCEDURE_NOTE,
    PROGRESS_NOTE, RADIOLOGY_CATEGORY,
};
use super::encode;
use super::json::Json;
use super::pdf;
use super::sink::Kind;
use super::time::{DAY, HOUR, MINUTE, Stamp};

/// A note before rendering: a title and headed sections.
pub(super) struct Note {
    pub title: &'static str,
    pub header: Vec<String>,
    pub sections: Vec<(&'static str, String)>,
    pub signature: String,
}

impl Note {
    pub fn plain(&self) -> String {
        let mut s = String::with_capacity(2048);
        s.push_str(&self.title.to_uppercase());
        s.push('\n');
        for h in &self.header {
            s.push_str(h);
            s.push('\n');
        }
        for (heading, body) in &self.sections {
            s.push('\n');
            s.push_str(heading);
            s.push_str(":\n");
            s.push_str(body);
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.signature);
        s.push('\n');
        s
    }

    pub fn html(&self) -> String {
        let mut s = String::with_capacity(2560);
        s.push_str("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>");
        html_escape(&mut s, self.title);
        s.push_str("</title></head><body><h1>");
        html_escape(&mut s, self.title);
        s.push_str("</h1>");
        for h in &self.header {
            s.push_str("<p>");
            html_escape(&mut s, h);
            s.push_str("</p>");
        }
        for (heading, body) in &self.sections {
            s.push_str("<h2>");
            html_escape(&mut s, heading);
            s.push_str("</h2>");
            for para in body.split('\n') {
                s.push_str("<p>");
                html_escape(&mut s, para);
                s.push_str("</p>");
            }
        }
        s.push_str("<p><em>");
        html_escape(&mut s, &self.signature);
        s.push_str("</em></p></body></html>");
        s
    }

    pub fn pdf(&self) -> Vec<u8> {
        pdf::render(self.title, &pdf::wrap(self.plain().trim_end()))
    }
}

fn html_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// A display without its SNOMED semantic tag: "Essential hypertension (disorder)" →
/// "Essential hypertension".
pub(super) fn plain_display(display: &str) -> &str {
    match display.rfind(" (") {
        Some(i) if display.ends_with(')') => &display[..i],
        _ => display,
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

const EXAM_NORMAL: &[&str] = &[
    "General: alert, oriented, in no acute distress.",
    "HEENT: normocephalic, atraumatic; oropharynx clear.",
    "Lungs: clear to auscultation bilaterally, no wheezes or crackles.",
    "Heart: regular rate and rhythm, no murmurs.",
    "Abdomen: soft, non-tender, non-distended.",
    "Extremities: no edema.",
    "Skin: warm and dry, no rashes.",
    "Neuro: cranial nerves intact, strength 5/5 throughout.",
];

/// How a note's content is delivered.
#[derive(Clone, Copy)]
enum Delivery {
    InlinePlain,
    InlineHtml,
    BinaryPlain,
    BinaryPdf,
    InlinePlainAndBinaryPdf,
    InlinePdf,
}

impl Gen<'_> {
    /// The notes a visit produces (most visits have none; admissions several).
    pub(super) fn notes_for(&mut self, v: &Visit) {
        let end = v.end_or_start();
        match v.purpose {
            Purpose::Wellness if self.rng.chance(0.35) => self.note(v, &PROGRESS_NOTE, end),
            Purpose::FollowUp(_) => {
                if self.rng.chance(0.5) {
                    self.note(v, &PROGRESS_NOTE, end);
                }
                if self.rng.chance(0.08) {
                    self.note(v, &CONSULT_NOTE, end);
                }
            }
            Purpose::Virtual(_) if self.rng.chance(0.6) => self.note(v, &PROGRESS_NOTE, end),
            Purpose::Home(_) if self.rng.chance(0.7) => self.note(v, &PROGRESS_NOTE, end),
            Purpose::Acute(_) if self.rng.chance(0.4) => self.note(v, &PROGRESS_NOTE, end),
            Purpose::Emergency(_) if self.rng.chance(0.85) => self.note(v, &ED_NOTE, end),
            Purpose::Admitted(_) | Purpose::Elective(..) => {
                if self.rng.chance(0.9) {
                    self.note(v, &HISTORY_AND_PHYSICAL, v.start.plus(2 * HOUR));
                }
                if let Some(e) = v.end {
                    let days = (e.local - v.start.local) / DAY;
                    for d in 1..=days.min(3) {
                        if self.rng.chance(0.4) {
                            self.note(v, &PROGRESS_NOTE, v.start.plus(d * DAY));
                        }
                    }
                    if self.rng.chance(0.95) {
                        self.note(v, &DISCHARGE_SUMMARY, e);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn procedure_note(&mut self, v: &Visit, def: &codes::ProcedureDef, t: Stamp) {
        let mut note = self.compose(v, &PROCEDURE_NOTE, t);
        let name = plain_display(def.code.display);
        note.sections = vec![
            ("Procedure", name.to_owned()),
            (
                "Indication",
                v.reasons
                    .first()
                    .map(|(_, c)| plain_display(c.display).to_owned())
                    .unwrap_or_else(|| "Elective.".to_owned()),
            ),
            ("Anesthesia", "General endotracheal anesthesia.".to_owned()),
            (
                "Description",
                format!(
                    "The patient was identified, consent confirmed, and a time-out performed. {name} was performed without complication. Estimated blood loss {} mL.",
                    self.rng.range(5, 250)
                ),
            ),
            ("Disposition", "To recovery in stable condition.".to_owned()),
        ];
        self.document(v, &PROCEDURE_NOTE, &note, t);
    }

    fn note(&mut self, v: &Visit, kind: &'static Code, t: Stamp) {
        let note = self.compose(v, kind, t);
        self.document(v, kind, &note, t);
    }

    /// Builds a note's text from the visit and the patient's record so far.
    fn compose(&mut self, v: &Visit, kind: &'static Code, t: Stamp) -> Note {
        let author = self
            .pools
            .practitioner_info(self.p.staff[v.staff.min(5)].index);
        let facility = if v.in_hospital {
            &self.p.hospital_name
        } else {
            &self.p.org_name
        };
        let header = vec![
            facility.clone(),
            format!(
                "Patient: {}, {}    MRN: {}    DOB: {}",
                self.p.family,
                self.p.given,
                self.p.mrn,
                Stamp::at_day(self.p.core.birth, self.p.tz).date_string()
            ),
            format!(
                "Date of service: {}    Author: {}",
                t.date_string(),
                author.signature()
            ),
        ];
        let mut sections: Vec<(&'static str, String)> = Vec::with_capacity(9);
        let complaint = if v.complaint.is_empty() {
            "follow-up".to_owned()
        } else {
            capitalize(v.complaint)
        };
        sections.push(("Chief complaint", complaint));

        let purpose = match v.purpose {
            Purpose::Wellness => "for a routine health maintenance visit".to_owned(),
            Purpose::FollowUp(_) | Purpose::Home(_) => {
                "for follow-up of chronic medical problems".to_owned()
            }
            Purpose::Virtual(_) => {
                "by video visit for follow-up of chronic medical problems".to_owned()
            }
            Purpose::Acute(_) | Purpose::Emergency(_) | Purpose::Admitted(_) => {
                format!("with {} for {} days", v.complaint, self.rng.range(1, 5))
            }
            Purpose::Elective(..) => "for a planned surgical admission".to_owned(),
        };
        let mut hpi = format!(
            "{} is a {}-year-old {} who presents {}.",
            self.p.given,
            v.age,
            self.p.noun(v.age),
            purpose
        );
        for (_, c) in &v.reasons {
            if let Some(p) = self.plans.iter().find(|p| p.def.snomed.code == c.code) {
                hpi.push(' ');
                hpi.push_str(p.def.finding);
            }
        }
        if v.fever {
            hpi.push_str(" Reports subjective fevers and chills.");
        }
        if self.p.smoking >= 2 && v.age >= 18 {
            hpi.push_str(" Current smoker.");
        }
        sections.push(("History of present illness", hpi));

        let problems: Vec<&str> = self
            .plans
            .iter()
            .filter(|p| p.recorded.is_some() && p.onset <= t)
            .map(|p| plain_display(p.def.snomed.display))
            .collect();
        sections.push((
            "Past medical history",
            if problems.is_empty() {
                "No significant past medical history.".to_owned()
            } else {
                problems.join("; ")
            },
        ));
        let meds: Vec<String> = self
            .plans
            .iter()
            .filter(|p| p.recorded.is_some() && p.abatement.is_none_or(|a| a > t))
            .flat_map(|p| p.meds.iter())
            .map(|&m| format!("{}: {}", MEDS[m].code.display, MEDS[m].sig.to_lowercase()))
            .collect();
        sections.push((
            "Medications",
            if meds.is_empty() {
                "None.".to_owned()
            } else {
                meds.join("\n")
            },
        ));
        let allergies: Vec<&str> = self
            .allergies
            .iter()
            .map(|&a| plain_display(codes::ALLERGIES[a].code.display))
            .collect();
        sections.push((
            "Allergies",
            if allergies.is_empty() {
                "No known allergies.".to_owned()
            } else {
                allergies.join(", ")
            },
        ));
        if let Some(vs) = &self.vitals {
            sections.push((
                "Vital signs",
                format!(
                    "BP {:.0}/{:.0} mmHg, HR {:.0}, RR {:.0}, Temp {:.1} C, SpO2 {:.0}%, Weight {:.1} kg.",
                    vs.systolic,
                    vs.diastolic,
                    vs.heart_rate,
                    vs.resp_rate,
                    vs.temperature,
                    vs.spo2,
                    vs.weight
                ),
            ));
        }
        if !matches!(v.purpose, Purpose::Virtual(_)) {
            let mut exam: Vec<&str> = EXAM_NORMAL.to_vec();
            if v.fever {
                exam[0] = "General: appears tired, mildly ill.";
            }
            let keep = self.rng.range(4, exam.len() as i64) as usize;
            sections.push(("Physical examination", exam[..keep].join("\n")));
        }
        let mut plan = String::new();
        for (k, (display, text)) in v.plans.iter().enumerate() {
            if k > 0 {
                plan.push('\n');
            }
            plan.push_str(&format!("{}. {}: {}", k + 1, plain_display(display), text));
        }
        if plan.is_empty() {
            plan.push_str("1. Health maintenance: age-appropriate screening and immunizations reviewed; return in one year.");
        }
        if kind == &DISCHARGE_SUMMARY {
            let disposition = if v.died {
                "The patient expired during this admission; the family was at the bedside."
            } else {
                "Discharged home in stable condition with follow-up in 1 to 2 weeks."
            };
            sections.push((
                "Hospital course",
                format!(
                    "Admitted on {} and treated as below. {disposition}",
                    v.start.date_string()
                ),
            ));
        }
        sections.push(("Assessment and plan", plan));
        Note {
            title: kind.display,
            header,
            sections,
            signature: format!(
                "Electronically signed by {} on {}",
                author.signature(),
                t.plus(self.rng.range(10, 600) * MINUTE).datetime_string()
            ),
        }
    }

    /// Writes a DocumentReference (and its Binaries) for a note.
    fn document(&mut self, v: &Visit, kind: &Code, note: &Note, t: Stamp) {
        let id = self.rng.uuid();
        let delivery = match self.rng.below(100) {
            0..35 => Delivery::InlinePlain,
            35..50 => Delivery::InlineHtml,
            50..65 => Delivery::BinaryPlain,
            65..85 => Delivery::BinaryPdf,
            85..93 => Delivery::InlinePlainAndBinaryPdf,
            _ => Delivery::InlinePdf,
        };
        let status = match self.rng.below(100) {
            0..2 => "entered-in-error",
            2..3 => "superseded",
            _ => "current",
        };
        let doc_status = match self.rng.below(100) {
            0..3 => "amended",
            3..5 => "preliminary",
            _ => "final",
        };
        let with_hash = self.rng.chance(0.5);
        let staff = self.staff_id(v.staff).to_owned();
        let custodian = if v.in_hospital {
            self.p.hospital_id.clone()
        } else {
            self.p.org_id.clone()
        };

        // (content type, bytes, Binary id when not inline)
        let mut parts: Vec<(&'static str, Vec<u8>, Option<String>)> = Vec::with_capacity(2);
        match delivery {
            Delivery::InlinePlain => parts.push(("text/plain", note.plain().into_bytes(), None)),
            Delivery::InlineHtml => parts.push(("text/html", note.html().into_bytes(), None)),
            Delivery::BinaryPlain => parts.push((
                "text/plain",
                note.plain().into_bytes(),
                Some(self.rng.uuid()),
            )),
            Delivery::BinaryPdf => {
                parts.push(("application/pdf", note.pdf(), Some(self.rng.uuid())))
            }
            Delivery::InlinePlainAndBinaryPdf => {
                parts.push(("text/plain", note.plain().into_bytes(), None));
                parts.push(("application/pdf", note.pdf(), Some(self.rng.uuid())));
            }
            Delivery::InlinePdf => parts.push(("application/pdf", note.pdf(), None)),
        }

        let mut r = self.open(Kind::DocumentReference, &id, t);
        r.str("status", status);
        r.str("docStatus", doc_status);
        r.concept("type", kind);
        r.concept_list("category", &CLINICAL_NOTE);
        r.reference("subject", "Patient", &self.p.id);
        r.instant("date", t, 0);
        r.reference_list("author", "Practitioner", &staff);
        if doc_status == "final" {
            r.reference("authenticator", "Practitioner", &staff);
        }
        r.reference("custodian", "Organization", &custodian);
        r.arr("content", |j| {
            for (content_type, bytes, binary) in &parts {
                j.item(|j| {
                    j.obj("attachment", |j| {
                        j.str("contentType", content_type);
                        j.str("language", "en-US");
                        match binary {
                            Some(b) => j.str_fmt("url", format_args!("Binary/{b}")),
                            None => j.str("data", &encode::base64(bytes)),
                        }
                        j.int("size", bytes.len() as i64);
                        if with_hash {
                            j.str("hash", &encode::base64(&encode::sha1(bytes)));
                        }
                        j.str("title", kind.display);
                        j.datetime("creation", t);
                    });
                    // `format` is a Coding, not a CodeableConcept.
                    j.obj("format", |j| {
                        j.str(
                            "system",
                            "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                        );
                        j.str("code", "urn:ihe:iti:xds:2017:mimeTypeSufficient");
                        j.str("display", "mimeType Sufficient");
                    });
                });
            }
        });
        r.obj("context", |j| {
            j.reference_list("encounter", "Encounter", &v.id);
            j.period("period", v.start, v.end);
        });
        self.close(r);

        for (content_type, bytes, binary) in parts {
            if let Some(b) = binary {
                let mut r = self.open(Kind::Binary, &b, t);
                r.str("contentType", content_type);
                r.reference("securityContext", "DocumentReference", &id);
                r.str("data", &encode::base64(&bytes));
                self.close(r);
            }
        }
    }

    /// An imaging or ECG study: its order and a narrative DiagnosticReport whose text is
    /// inline in `presentedForm`.
    pub(super) fn imaging_report(&mut self, v: &Visit, procedure: &str, condition: &str, t: Stamp) {
        let ecg = procedure == "29303009";
        let (report_code, category) = if ecg {
            (&EKG_REPORT, &CARDIOLOGY_CATEGORY)
        } else {
            (&IMAGING_REPORT, &RADIOLOGY_CATEGORY)
        };
        let Some(proc_def) = codes::procedure(procedure) else {
            return;
        };
        let afib = self.has(codes::ATRIAL_FIBRILLATION, t);
        let pneumonia = v.reasons.iter().any(|(_, c)| c.code == "233604007");
        let text = if ecg {
            let rate = self.vitals.map(|vs| vs.heart_rate).unwrap_or(78.0);
            let rhythm = if afib {
                "Atrial fibrillation with controlled ventricular response"
            } else {
                "Normal sinus rhythm"
            };
            format!(
                "ELECTROCARDIOGRAM\nPatient: {}, {}  MRN: {}\nDate: {}\n\nRhythm: {rhythm}, rate {rate:.0}.\nPR interval {} ms, QRS duration {} ms, QTc {} ms.\nNo acute ST-segment elevation or depression.\n\nIMPRESSION: {rhythm}. No acute ischemic changes.",
                self.p.family,
                self.p.given,
                self.p.mrn,
                t.date_string(),
                self.rng.range(130, 200),
                self.rng.range(80, 110),
                self.rng.range(400, 460),
            )
        } else {
            let findings = if pneumonia {
                "Patchy consolidation in the right lower lobe. No pleural effusion or pneumothorax."
            } else {
                "The lungs are clear. No focal consolidation, effusion, or pneumothorax. Cardiomediastinal silhouette is normal."
            };
            let impression = if pneumonia {
                "Right lower lobe pneumonia."
            } else {
                "No acute cardiopulmonary process."
            };
            format!(
                "CHEST RADIOGRAPH, TWO VIEWS\nPatient: {}, {}  MRN: {}\nDate: {}\n\nCLINICAL HISTORY: {}.\nCOMPARISON: None.\n\nFINDINGS: {findings}\n\nIMPRESSION: {impression}",
                self.p.family,
                self.p.given,
                self.p.mrn,
                t.date_string(),
                capitalize(if v.complaint.is_empty() {
                    "evaluation"
                } else {
                    v.complaint
                }),
            )
        };
        let impression = text
            .rsplit("IMPRESSION: ")
            .next()
            .unwrap_or_default()
            .to_owned();
        let staff = self.staff_id(v.staff).to_owned();
        let order = self.rng.uuid();
        let mut r = self.open(Kind::ServiceRequest, &order, t);
        r.str("status", "completed");
        r.str("intent", "order");
        r.concept_list("category", &IMAGING_ORDER_CATEGORY);
        r.concept("code", &proc_def.code);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("occurrenceDateTime", t);
        r.datetime("authoredOn", t.plus(-self.rng.range(5, 60) * MINUTE));
        r.reference("requester", "Practitioner", &staff);
        r.reference_list("reasonReference", "Condition", condition);
        self.close(r);

        let html = self.rng.chance(0.3);
        let body = if html {
            let mut s = String::from("<!DOCTYPE html><html><body>");
            for line in text.split('\n') {
                s.push_str("<p>");
                html_escape(&mut s, line);
                s.push_str("</p>");
            }
            s.push_str("</body></html>");
            s
        } else {
            text
        };
        let issued = t.plus(self.rng.range(1, 12) * HOUR);
        let ms = self.rng.below(1000) as u32;
        let id = self.rng.uuid();
        let mut r = self.open(Kind::DiagnosticReport, &id, issued);
        r.reference_list("basedOn", "ServiceRequest", &order);
        r.str("status", "final");
        r.concept_list("category", category);
        r.concept("code", report_code);
        r.reference("subject", "Patient", &self.p.id);
        r.reference("encounter", "Encounter", &v.id);
        r.datetime("effectiveDateTime", t);
        r.instant("issued", issued, ms);
        r.reference_list("performer", "Organization", &self.p.hospital_id);
        r.reference_list("resultsInterpreter", "Practitioner", &staff);
        r.str("conclusion", &impression);
        write_presented_form(
            &mut r,
            if html { "text/html" } else { "text/plain" },
            body.as_bytes(),
            report_code.display,
            t,
        );
        self.close(r);
    }
}

fn write_presented_form(j: &mut Json, content_type: &str, bytes: &[u8], title: &str, t: Stamp) {
    j.arr("presentedForm", |j| {
        j.item(|j| {
            j.str("contentType", content_type);
            j.str("language", "en-US");
            j.str("data", &encode::base64(bytes));
            j.int("size", bytes.len() as i64);
            j.str("title", title);
            j.datetime("creation", t);
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_lose_their_semantic_tag() {
        assert_eq!(
            plain_display("Essential hypertension (disorder)"),
            "Essential hypertension"
        );
        assert_eq!(plain_display("Prediabetes"), "Prediabetes");
    }

    #[test]
    fn notes_render_in_every_format() {
        let note = Note {
            title: "Progress note",
            header: vec!["Patient: Müller, Zoë".into()],
            sections: vec![(
                "Assessment and plan",
                "1. Hypertension: <stable> & fine.".into(),
            )],
            signature: "Electronically signed by Dr. A B, MD".into(),
        };
        let plain = note.plain();
        assert!(plain.starts_with("PROGRESS NOTE\n"));
        assert!(note.html().contains("&lt;stable&gt; &amp; fine"));
        let pdf = note.pdf();
        pdf::tests::check_structure(&pdf);
        let text = pdf::tests::extract_text(&pdf).join("\n");
        assert!(text.contains("Patient: Müller, Zoë"));
        assert!(text.contains("1. Hypertension: <stable> & fine."));
    }
}
