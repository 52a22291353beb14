//! Code tables: real SNOMED CT, LOINC, RxNorm, ICD-10-CM, CVX and HL7 codes with their
//! displays, and the weights and links (condition → medicines, labs, devices) that make a
//! record clinically coherent.
//!
//! Only codes whose meaning is well established are listed (most are the ones Synthea uses),
//! because downstream tests (Cumulus studies, de-identification, terminology look-ups) key
//! on exact codes. Everything else in a resource is decoration around these.

/// One coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Code {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

pub(super) const SNOMED: &str = "http://snomed.info/sct";
pub(super) const LOINC: &str = "http://loinc.org";
pub(super) const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub(super) const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub(super) const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub(super) const UCUM: &str = "http://unitsofmeasure.org";
pub(super) const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
pub(super) const SSN: &str = "http://hl7.org/fhir/sid/us-ssn";
pub(super) const OMB: &str = "urn:oid:2.16.840.1.113883.6.238";
pub(super) const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
pub(super) const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub(super) const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub(super) const INTERPRETATION: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
pub(super) const CONDITION_CLINICAL: &str =
    "http://terminology.hl7.org/CodeSystem/condition-clinical";
pub(super) const CONDITION_VER: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
pub(super) const CONDITION_CATEGORY: &str =
    "http://terminology.hl7.org/CodeSystem/condition-category";
pub(super) const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
pub(super) const US_CORE_DOC_CATEGORY: &str =
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";

pub(super) const fn code(system: &'static str, code: &'static str, display: &'static str) -> Code {
    Code {
        system,
        code,
        display,
    }
}

const fn sct(c: &'static str, d: &'static str) -> Code {
    code(SNOMED, c, d)
}

const fn lnc(c: &'static str, d: &'static str) -> Code {
    code(LOINC, c, d)
}

const fn rx(c: &'static str, d: &'static str) -> Code {
    code(RXNORM, c, d)
}

const fn icd(c: &'static str, d: &'static str) -> Code {
    code(ICD10CM, c, d)
}

const fn cvx(c: &'static str, d: &'static str) -> Code {
    code(CVX, c, d)
}

// ---- Conditions --------------------------------------------------------------------------

/// Lab panels a condition (or a visit type) orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Panel {
    Cbc,
    Metabolic,
    Lipid,
    A1c,
    Tsh,
    Renal,
    Urinalysis,
}

/// Age bands used for prevalence: 0–17, 18–44, 45–64, 65+.
pub(super) fn age_band(age: i64) -> usize {
    match age {
        ..18 => 0,
        18..45 => 1,
        45..65 => 2,
        _ => 3,
    }
}

/// A long-term condition: planned for a patient up front with an onset age, recorded on the
/// problem list at the first visit after onset, and driving medicines, labs and follow-ups.
pub(super) struct Chronic {
    pub snomed: Code,
    pub icd10: Code,
    /// Lifetime chance by age band at the end of the record.
    pub prevalence: [f64; 4],
    pub min_onset_age: i64,
    /// Chance that it resolves or remits (then `abatementDateTime` is set).
    pub remits: f64,
    /// RxNorm codes (in [`MEDS`]) started when it is recorded.
    pub meds: &'static [&'static str],
    pub labs: &'static [Panel],
    /// SNOMED device type (in [`DEVICES`]) some patients receive.
    pub device: Option<&'static str>,
    /// What the history of present illness says.
    pub finding: &'static str,
    pub plan: &'static str,
}

// Indexes in [`CHRONIC`] of the conditions other tables and value models refer to
// (checked against their SNOMED codes in the tests).
pub(super) const HYPERTENSION: usize = 0;
/// Type 2 diabetes: the diabetes cohort Group is built on it.
pub(super) const DIABETES: usize = 1;
pub(super) const HYPERLIPIDEMIA: usize = 2;
pub(super) const COPD: usize = 4;
pub(super) const ATRIAL_FIBRILLATION: usize = 6;
pub(super) const HEART_FAILURE: usize = 7;
pub(super) const CKD: usize = 8;
pub(super) const HYPOTHYROIDISM: usize = 9;
pub(super) const OBESITY: usize = 10;
pub(super) const DEPRESSION: usize = 11;
pub(super) const ANXIETY: usize = 12;
/// Prediabetes is never planned together with diabetes.
pub(super) const PREDIABETES: usize = 19;
pub(super) const ANEMIA: usize = 20;

pub(super) static CHRONIC: &[Chronic] = &[
    Chronic {
        snomed: sct("59621000", "Essential hypertension (disorder)"),
        icd10: icd("I10", "Essential (primary) hypertension"),
        prevalence: [0.005, 0.12, 0.38, 0.62],
        min_onset_age: 18,
        remits: 0.0,
        meds: &["314076", "197361", "310798"],
        labs: &[Panel::Metabolic],
        device: None,
        finding: "Home blood pressure readings have been running above goal.",
        plan: "Continue antihypertensive therapy, reduce dietary sodium, recheck blood pressure in 3 months.",
    },
    Chronic {
        snomed: sct("44054006", "Diabetes mellitus type 2 (disorder)"),
        icd10: icd("E11.9", "Type 2 diabetes mellitus without complications"),
        // Decided by the patient's cohort traits, not by these numbers (see patient.rs).
        prevalence: [0.0, 0.0, 0.0, 0.0],
        min_onset_age: 12,
        remits: 0.0,
        meds: &["860975", "106892"],
        labs: &[Panel::A1c, Panel::Metabolic],
        device: Some("337414009"),
        finding: "Reports good adherence to metformin; fasting sugars at home 120 to 160.",
        plan: "Continue metformin, check hemoglobin A1c, annual diabetic eye and foot exams, dietary counseling.",
    },
    Chronic {
        snomed: sct("55822004", "Hyperlipidemia (disorder)"),
        icd10: icd("E78.5", "Hyperlipidemia, unspecified"),
        prevalence: [0.002, 0.08, 0.28, 0.45],
        min_onset_age: 20,
        remits: 0.0,
        meds: &["316672", "312961", "259255"],
        labs: &[Panel::Lipid],
        device: None,
        finding: "Tolerating statin without myalgias.",
        plan: "Continue statin, repeat fasting lipid panel in 12 months.",
    },
    Chronic {
        snomed: sct("195967001", "Asthma (disorder)"),
        icd10: icd("J45.909", "Unspecified asthma, uncomplicated"),
        prevalence: [0.08, 0.07, 0.07, 0.06],
        min_onset_age: 2,
        remits: 0.25,
        meds: &["745679", "895994"],
        labs: &[],
        device: None,
        finding: "Uses rescue inhaler about twice a week, no night-time symptoms.",
        plan: "Continue inhaled corticosteroid, albuterol as needed, review inhaler technique.",
    },
    Chronic {
        snomed: sct("13645005", "Chronic obstructive lung disease (disorder)"),
        icd10: icd(
            "J44.9",
            "Chronic obstructive pulmonary disease, unspecified",
        ),
        prevalence: [0.0, 0.01, 0.06, 0.12],
        min_onset_age: 40,
        remits: 0.0,
        meds: &["896209", "745679"],
        labs: &[Panel::Cbc],
        device: None,
        finding: "Chronic exertional dyspnea, stable; no recent exacerbation.",
        plan: "Continue inhaled bronchodilators, smoking cessation counseling, pulmonary rehab referral.",
    },
    Chronic {
        snomed: sct("53741008", "Coronary arteriosclerosis (disorder)"),
        icd10: icd(
            "I25.10",
            "Atherosclerotic heart disease of native coronary artery without angina pectoris",
        ),
        prevalence: [0.0, 0.005, 0.06, 0.16],
        min_onset_age: 35,
        remits: 0.0,
        meds: &["243670", "309362", "259255", "705129"],
        labs: &[Panel::Lipid, Panel::Metabolic],
        device: None,
        finding: "No exertional chest pain since last visit.",
        plan: "Continue aspirin, clopidogrel and high-intensity statin; cardiology follow-up.",
    },
    Chronic {
        snomed: sct("49436004", "Atrial fibrillation (disorder)"),
        icd10: icd("I48.91", "Unspecified atrial fibrillation"),
        prevalence: [0.0, 0.002, 0.02, 0.09],
        min_onset_age: 40,
        remits: 0.0,
        meds: &["855332", "866414"],
        labs: &[Panel::Cbc],
        device: Some("14106009"),
        finding: "Occasional palpitations; rate controlled.",
        plan: "Continue anticoagulation and rate control, monitor INR.",
    },
    Chronic {
        snomed: sct("84114007", "Heart failure (disorder)"),
        icd10: icd("I50.9", "Heart failure, unspecified"),
        prevalence: [0.0, 0.002, 0.02, 0.08],
        min_onset_age: 40,
        remits: 0.0,
        meds: &["313988", "314076", "866414"],
        labs: &[Panel::Metabolic, Panel::Renal],
        device: Some("72506001"),
        finding: "Mild ankle edema, sleeps on two pillows, weight stable.",
        plan: "Continue diuretic, daily weights, fluid and salt restriction.",
    },
    Chronic {
        snomed: sct("709044004", "Chronic kidney disease (disorder)"),
        icd10: icd("N18.9", "Chronic kidney disease, unspecified"),
        prevalence: [0.0, 0.01, 0.05, 0.14],
        min_onset_age: 30,
        remits: 0.0,
        meds: &["205923"],
        labs: &[Panel::Renal, Panel::Metabolic, Panel::Cbc],
        device: None,
        finding: "No uremic symptoms; creatinine trending stable.",
        plan: "Avoid NSAIDs, monitor renal function, nephrology referral if eGFR declines.",
    },
    Chronic {
        snomed: sct("40930008", "Hypothyroidism (disorder)"),
        icd10: icd("E03.9", "Hypothyroidism, unspecified"),
        prevalence: [0.003, 0.03, 0.06, 0.09],
        min_onset_age: 10,
        remits: 0.0,
        meds: &["966222"],
        labs: &[Panel::Tsh],
        device: None,
        finding: "Energy improved on levothyroxine.",
        plan: "Continue levothyroxine, recheck TSH in 6 to 8 weeks.",
    },
    Chronic {
        snomed: sct("414916001", "Obesity (disorder)"),
        icd10: icd("E66.9", "Obesity, unspecified"),
        prevalence: [0.12, 0.3, 0.36, 0.3],
        min_onset_age: 6,
        remits: 0.1,
        meds: &[],
        labs: &[Panel::A1c, Panel::Lipid],
        device: None,
        finding: "Working on diet and exercise; weight up slightly.",
        plan: "Nutrition counseling, 150 minutes of moderate activity per week.",
    },
    Chronic {
        snomed: sct("370143000", "Major depressive disorder (disorder)"),
        icd10: icd(
            "F32.9",
            "Major depressive disorder, single episode, unspecified",
        ),
        prevalence: [0.03, 0.09, 0.08, 0.06],
        min_onset_age: 12,
        remits: 0.4,
        meds: &["312938"],
        labs: &[Panel::Tsh],
        device: None,
        finding: "Mood improved, sleeping better, denies suicidal ideation.",
        plan: "Continue sertraline, follow up with behavioral health.",
    },
    Chronic {
        snomed: sct("197480006", "Anxiety disorder (disorder)"),
        icd10: icd("F41.9", "Anxiety disorder, unspecified"),
        prevalence: [0.05, 0.12, 0.09, 0.06],
        min_onset_age: 8,
        remits: 0.35,
        meds: &["312938"],
        labs: &[],
        device: None,
        finding: "Reports worry and poor sleep, improved with therapy.",
        plan: "Cognitive behavioral therapy, continue SSRI.",
    },
    Chronic {
        snomed: sct("239873007", "Osteoarthritis of knee (disorder)"),
        icd10: icd("M17.9", "Osteoarthritis of knee, unspecified"),
        prevalence: [0.0, 0.02, 0.12, 0.3],
        min_onset_age: 35,
        remits: 0.0,
        meds: &["849574", "198440"],
        labs: &[],
        device: None,
        finding: "Knee pain worse with stairs, morning stiffness under 30 minutes.",
        plan: "Physical therapy, NSAIDs as needed, consider orthopedic referral.",
    },
    Chronic {
        snomed: sct("64859006", "Osteoporosis (disorder)"),
        icd10: icd(
            "M81.0",
            "Age-related osteoporosis without current pathological fracture",
        ),
        prevalence: [0.0, 0.002, 0.04, 0.14],
        min_onset_age: 45,
        remits: 0.0,
        meds: &["904420"],
        labs: &[],
        device: None,
        finding: "No falls or fractures since last visit.",
        plan: "Continue bisphosphonate, calcium and vitamin D, repeat DEXA in 2 years.",
    },
    Chronic {
        snomed: sct("235595009", "Gastroesophageal reflux disease (disorder)"),
        icd10: icd(
            "K21.9",
            "Gastro-esophageal reflux disease without esophagitis",
        ),
        prevalence: [0.01, 0.1, 0.15, 0.18],
        min_onset_age: 10,
        remits: 0.3,
        meds: &[],
        labs: &[],
        device: None,
        finding: "Heartburn after large meals, no dysphagia.",
        plan: "Avoid late meals, elevate head of bed, reassess in 3 months.",
    },
    Chronic {
        snomed: sct("37796009", "Migraine (disorder)"),
        icd10: icd(
            "G43.909",
            "Migraine, unspecified, not intractable, without status migrainosus",
        ),
        prevalence: [0.03, 0.12, 0.08, 0.03],
        min_onset_age: 8,
        remits: 0.3,
        meds: &["310965"],
        labs: &[],
        device: None,
        finding: "Two to three migraines per month with photophobia.",
        plan: "Headache diary, NSAIDs at onset, avoid triggers.",
    },
    Chronic {
        snomed: sct("61582004", "Allergic rhinitis (disorder)"),
        icd10: icd("J30.9", "Allergic rhinitis, unspecified"),
        prevalence: [0.1, 0.15, 0.12, 0.08],
        min_onset_age: 3,
        remits: 0.2,
        meds: &["1014676", "997488"],
        labs: &[],
        device: None,
        finding: "Seasonal sneezing and nasal congestion.",
        plan: "Daily antihistamine during pollen season.",
    },
    Chronic {
        snomed: sct("279039007", "Low back pain (finding)"),
        icd10: icd("M54.50", "Low back pain, unspecified"),
        prevalence: [0.01, 0.1, 0.15, 0.15],
        min_onset_age: 16,
        remits: 0.5,
        meds: &["849574"],
        labs: &[],
        device: None,
        finding: "Intermittent low back pain without radicular symptoms.",
        plan: "Core strengthening, heat, NSAIDs as needed.",
    },
    Chronic {
        snomed: sct("714628002", "Prediabetes (finding)"),
        icd10: icd("R73.03", "Prediabetes"),
        prevalence: [0.01, 0.1, 0.2, 0.22],
        min_onset_age: 12,
        remits: 0.2,
        meds: &[],
        labs: &[Panel::A1c],
        device: None,
        finding: "Hemoglobin A1c in the prediabetic range.",
        plan: "Lifestyle modification, weight loss goal 5 to 7 percent, repeat A1c in 12 months.",
    },
    Chronic {
        snomed: sct("271737000", "Anemia (disorder)"),
        icd10: icd("D64.9", "Anemia, unspecified"),
        prevalence: [0.02, 0.05, 0.04, 0.08],
        min_onset_age: 1,
        remits: 0.5,
        meds: &["310325"],
        labs: &[Panel::Cbc],
        device: None,
        finding: "Reports fatigue; no bleeding.",
        plan: "Iron supplementation, repeat CBC in 8 weeks.",
    },
    Chronic {
        snomed: sct("24079001", "Atopic dermatitis (disorder)"),
        icd10: icd("L20.9", "Atopic dermatitis, unspecified"),
        prevalence: [0.1, 0.03, 0.02, 0.01],
        min_onset_age: 0,
        remits: 0.5,
        meds: &[],
        labs: &[],
        device: None,
        finding: "Dry, itchy patches in flexural areas.",
        plan: "Emollients twice daily, gentle skin care.",
    },
    Chronic {
        snomed: sct(
            "406506008",
            "Attention deficit hyperactivity disorder (disorder)",
        ),
        icd10: icd(
            "F90.9",
            "Attention-deficit hyperactivity disorder, unspecified type",
        ),
        prevalence: [0.08, 0.04, 0.02, 0.005],
        min_onset_age: 5,
        remits: 0.2,
        meds: &[],
        labs: &[],
        device: None,
        finding: "Difficulty sustaining attention at school.",
        plan: "Behavioral strategies, coordinate with school, reassess in 3 months.",
    },
    Chronic {
        snomed: sct("26929004", "Alzheimer's disease (disorder)"),
        icd10: icd("G30.9", "Alzheimer's disease, unspecified"),
        prevalence: [0.0, 0.0, 0.005, 0.07],
        min_onset_age: 60,
        remits: 0.0,
        meds: &["997224"],
        labs: &[Panel::Tsh],
        device: None,
        finding: "Family reports increasing forgetfulness.",
        plan: "Continue donepezil, home safety review, caregiver support.",
    },
    Chronic {
        snomed: sct("78275009", "Obstructive sleep apnea syndrome (disorder)"),
        icd10: icd("G47.33", "Obstructive sleep apnea (adult) (pediatric)"),
        prevalence: [0.01, 0.05, 0.1, 0.12],
        min_onset_age: 10,
        remits: 0.0,
        meds: &[],
        labs: &[],
        device: None,
        finding: "Snoring and daytime somnolence.",
        plan: "Sleep study, CPAP adherence reviewed.",
    },
    Chronic {
        snomed: sct("90560007", "Gout (disorder)"),
        icd10: icd("M10.9", "Gout, unspecified"),
        prevalence: [0.0, 0.01, 0.04, 0.06],
        min_onset_age: 25,
        remits: 0.0,
        meds: &["849574"],
        labs: &[Panel::Metabolic],
        device: None,
        finding: "One flare of the great toe this year.",
        plan: "Limit alcohol and purine-rich foods, NSAIDs for flares.",
    },
    Chronic {
        snomed: sct("69896004", "Rheumatoid arthritis (disorder)"),
        icd10: icd("M06.9", "Rheumatoid arthritis, unspecified"),
        prevalence: [0.0, 0.005, 0.015, 0.02],
        min_onset_age: 20,
        remits: 0.0,
        meds: &["105585"],
        labs: &[Panel::Cbc, Panel::Metabolic],
        device: None,
        finding: "Symmetric hand joint swelling, morning stiffness about an hour.",
        plan: "Continue methotrexate with folic acid, rheumatology follow-up, monitor CBC and liver tests.",
    },
    Chronic {
        snomed: sct("239872002", "Osteoarthritis of hip (disorder)"),
        icd10: icd("M16.9", "Osteoarthritis of hip, unspecified"),
        prevalence: [0.0, 0.01, 0.06, 0.15],
        min_onset_age: 40,
        remits: 0.0,
        meds: &["198440"],
        labs: &[],
        device: None,
        finding: "Groin pain with walking, limited internal rotation.",
        plan: "Physical therapy, acetaminophen, orthopedic referral for persistent pain.",
    },
];

/// Where an acute problem is usually seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Setting {
    Clinic,
    Emergency,
    Both,
}

/// A short illness or injury: becomes an encounter diagnosis, then resolves.
pub(super) struct Acute {
    pub snomed: Code,
    pub icd10: Code,
    /// Relative frequency by age band.
    pub weight: [u32; 4],
    pub setting: Setting,
    /// Days until it resolves (min, max).
    pub days: (i64, i64),
    pub fever: bool,
    pub meds: &'static [&'static str],
    pub procedures: &'static [&'static str],
    pub labs: &'static [Panel],
    /// Chance an emergency visit for it ends in admission.
    pub admit: f64,
    pub complaint: &'static str,
    pub plan: &'static str,
}

pub(super) static ACUTE: &[Acute] = &[
    Acute {
        snomed: sct("195662009", "Acute viral pharyngitis (disorder)"),
        icd10: icd("J02.9", "Acute pharyngitis, unspecified"),
        weight: [30, 15, 8, 4],
        setting: Setting::Clinic,
        days: (5, 14),
        fever: true,
        meds: &["834061", "308182"],
        procedures: &["117015009"],
        labs: &[],
        admit: 0.0,
        complaint: "sore throat and fever",
        plan: "Supportive care, fluids, throat culture sent; antibiotics if culture positive.",
    },
    Acute {
        snomed: sct("10509002", "Acute bronchitis (disorder)"),
        icd10: icd("J20.9", "Acute bronchitis, unspecified"),
        weight: [12, 14, 14, 14],
        setting: Setting::Clinic,
        days: (7, 21),
        fever: false,
        meds: &["1043400"],
        procedures: &[],
        labs: &[],
        admit: 0.0,
        complaint: "cough for one week",
        plan: "Symptomatic treatment, return if fever or shortness of breath develops.",
    },
    Acute {
        snomed: sct("444814009", "Viral sinusitis (disorder)"),
        icd10: icd("J01.90", "Acute sinusitis, unspecified"),
        weight: [10, 20, 16, 10],
        setting: Setting::Clinic,
        days: (7, 21),
        fever: false,
        meds: &["562251"],
        procedures: &[],
        labs: &[],
        admit: 0.0,
        complaint: "facial pressure and nasal congestion",
        plan: "Saline irrigation, decongestants; antibiotics if symptoms persist beyond 10 days.",
    },
    Acute {
        snomed: sct("65363002", "Otitis media (disorder)"),
        icd10: icd("H66.90", "Otitis media, unspecified, unspecified ear"),
        weight: [40, 3, 1, 1],
        setting: Setting::Clinic,
        days: (5, 14),
        fever: true,
        meds: &["308182", "562251"],
        procedures: &[],
        labs: &[],
        admit: 0.0,
        complaint: "ear pain",
        plan: "Amoxicillin for 10 days, analgesics, recheck if not improved in 72 hours.",
    },
    Acute {
        snomed: sct("68566005", "Urinary tract infectious disease (disorder)"),
        icd10: icd("N39.0", "Urinary tract infection, site not specified"),
        weight: [4, 12, 10, 14],
        setting: Setting::Both,
        days: (5, 14),
        fever: false,
        meds: &["311989", "1094107"],
        procedures: &[],
        labs: &[Panel::Urinalysis],
        admit: 0.05,
        complaint: "burning with urination",
        plan: "Nitrofurantoin for 5 days, urine culture, increase fluid intake.",
    },
    Acute {
        snomed: sct("233604007", "Pneumonia (disorder)"),
        icd10: icd("J18.9", "Pneumonia, unspecified organism"),
        weight: [4, 3, 5, 10],
        setting: Setting::Both,
        days: (10, 30),
        fever: true,
        meds: &["562251"],
        procedures: &["399208008"],
        labs: &[Panel::Cbc, Panel::Metabolic],
        admit: 0.35,
        complaint: "cough, fever and shortness of breath",
        plan: "Antibiotics, chest X-ray reviewed, return precautions for worsening dyspnea.",
    },
    Acute {
        snomed: sct("6142004", "Influenza (disorder)"),
        icd10: icd(
            "J11.1",
            "Influenza due to unidentified influenza virus with other respiratory manifestations",
        ),
        weight: [10, 8, 8, 8],
        setting: Setting::Both,
        days: (5, 14),
        fever: true,
        meds: &["313782"],
        procedures: &[],
        labs: &[],
        admit: 0.05,
        complaint: "fever, body aches and cough",
        plan: "Rest, fluids, antipyretics; isolate until afebrile for 24 hours.",
    },
    Acute {
        snomed: sct(
            "840539006",
            "Disease caused by severe acute respiratory syndrome coronavirus 2 (disorder)",
        ),
        icd10: icd("U07.1", "COVID-19"),
        weight: [6, 10, 10, 12],
        setting: Setting::Both,
        days: (7, 21),
        fever: true,
        meds: &["313782"],
        procedures: &[],
        labs: &[Panel::Cbc],
        admit: 0.15,
        complaint: "fever, cough and loss of taste",
        plan: "Supportive care, isolation per public health guidance, pulse oximetry at home.",
    },
    Acute {
        snomed: sct("44465007", "Sprain of ankle (disorder)"),
        icd10: icd(
            "S93.409A",
            "Sprain of unspecified ligament of unspecified ankle, initial encounter",
        ),
        weight: [8, 10, 5, 3],
        setting: Setting::Both,
        days: (14, 42),
        fever: false,
        meds: &["310965"],
        procedures: &[],
        labs: &[],
        admit: 0.0,
        complaint: "ankle pain after a fall",
        plan: "Rest, ice, compression, elevation; weight bearing as tolerated.",
    },
    Acute {
        snomed: sct("65966004", "Fracture of forearm (disorder)"),
        icd10: icd(
            "S52.90XA",
            "Unspecified fracture of unspecified forearm, initial encounter for closed fracture",
        ),
        weight: [6, 3, 2, 4],
        setting: Setting::Emergency,
        days: (42, 84),
        fever: false,
        meds: &["1049221"],
        procedures: &["274474001", "399208008"],
        labs: &[],
        admit: 0.05,
        complaint: "wrist pain and deformity after a fall",
        plan: "Splint applied, orthopedic follow-up in one week, analgesia.",
    },
    Acute {
        snomed: sct("25374005", "Gastroenteritis (disorder)"),
        icd10: icd("A09", "Infectious gastroenteritis and colitis, unspecified"),
        weight: [12, 8, 6, 6],
        setting: Setting::Both,
        days: (3, 10),
        fever: false,
        meds: &[],
        procedures: &[],
        labs: &[Panel::Metabolic],
        admit: 0.05,
        complaint: "vomiting and diarrhea",
        plan: "Oral rehydration, bland diet, return if unable to keep fluids down.",
    },
    Acute {
        snomed: sct("25064002", "Headache (finding)"),
        icd10: icd("R51.9", "Headache, unspecified"),
        weight: [4, 8, 6, 4],
        setting: Setting::Both,
        days: (1, 7),
        fever: false,
        meds: &["310965"],
        procedures: &[],
        labs: &[],
        admit: 0.0,
        complaint: "headache",
        plan: "Analgesics, hydration, headache diary.",
    },
    Acute {
        snomed: sct("29857009", "Chest pain (finding)"),
        icd10: icd("R07.9", "Chest pain, unspecified"),
        weight: [1, 5, 9, 12],
        setting: Setting::Emergency,
        days: (1, 3),
        fever: false,
        meds: &["243670"],
        procedures: &["29303009", "399208008"],
        labs: &[Panel::Cbc, Panel::Metabolic],
        admit: 0.25,
        complaint: "chest pain",
        plan: "ECG without acute changes, troponins negative; outpatient stress test.",
    },
    Acute {
        snomed: sct("128045006", "Cellulitis (disorder)"),
        icd10: icd("L03.90", "Cellulitis, unspecified"),
        weight: [3, 5, 6, 8],
        setting: Setting::Both,
        days: (7, 21),
        fever: true,
        meds: &["562251"],
        procedures: &[],
        labs: &[Panel::Cbc],
        admit: 0.1,
        complaint: "red, warm swelling of the leg",
        plan: "Oral antibiotics, mark borders, recheck in 48 hours.",
    },
    Acute {
        snomed: sct("9826008", "Conjunctivitis (disorder)"),
        icd10: icd("H10.9", "Unspecified conjunctivitis"),
        weight: [10, 4, 3, 3],
        setting: Setting::Clinic,
        days: (3, 10),
        fever: false,
        meds: &[],
        procedures: &[],
        labs: &[],
        admit: 0.0,
        complaint: "red, itchy eye",
        plan: "Warm compresses, hand hygiene.",
    },
    Acute {
        snomed: sct("21522001", "Abdominal pain (finding)"),
        icd10: icd("R10.9", "Unspecified abdominal pain"),
        weight: [5, 8, 7, 7],
        setting: Setting::Emergency,
        days: (1, 7),
        fever: false,
        meds: &[],
        procedures: &[],
        labs: &[Panel::Cbc, Panel::Metabolic, Panel::Urinalysis],
        admit: 0.15,
        complaint: "abdominal pain",
        plan: "Labs unremarkable, tolerating oral intake, return precautions given.",
    },
    Acute {
        snomed: sct("271594007", "Syncope (disorder)"),
        icd10: icd("R55", "Syncope and collapse"),
        weight: [1, 2, 3, 6],
        setting: Setting::Emergency,
        days: (1, 3),
        fever: false,
        meds: &[],
        procedures: &["29303009"],
        labs: &[Panel::Cbc, Panel::Metabolic],
        admit: 0.2,
        complaint: "passing out",
        plan: "Orthostatic vitals, ECG normal sinus rhythm, hydration counseling.",
    },
    Acute {
        snomed: sct("34095006", "Dehydration (disorder)"),
        icd10: icd("E86.0", "Dehydration"),
        weight: [3, 1, 1, 4],
        setting: Setting::Emergency,
        days: (1, 5),
        fever: false,
        meds: &[],
        procedures: &[],
        labs: &[Panel::Metabolic],
        admit: 0.2,
        complaint: "weakness and poor oral intake",
        plan: "IV fluids given, tolerating oral fluids at discharge.",
    },
    Acute {
        snomed: sct("110030002", "Concussion injury of brain (disorder)"),
        icd10: icd(
            "S06.0X0A",
            "Concussion without loss of consciousness, initial encounter",
        ),
        weight: [5, 3, 1, 2],
        setting: Setting::Emergency,
        days: (7, 28),
        fever: false,
        meds: &["313782"],
        procedures: &[],
        labs: &[],
        admit: 0.05,
        complaint: "head injury during sports",
        plan: "Cognitive and physical rest, graduated return to activity.",
    },
    Acute {
        snomed: sct("74400008", "Appendicitis (disorder)"),
        icd10: icd("K37", "Unspecified appendicitis"),
        weight: [2, 3, 1, 1],
        setting: Setting::Emergency,
        days: (14, 30),
        fever: true,
        meds: &["1659131"],
        procedures: &["80146002"],
        labs: &[Panel::Cbc, Panel::Metabolic],
        admit: 0.95,
        complaint: "right lower quadrant pain",
        plan: "Surgical consultation, appendectomy, perioperative antibiotics.",
    },
    Acute {
        snomed: sct("235919008", "Cholelithiasis (disorder)"),
        icd10: icd(
            "K80.20",
            "Calculus of gallbladder without cholecystitis without obstruction",
        ),
        weight: [0, 2, 3, 3],
        setting: Setting::Emergency,
        days: (14, 45),
        fever: false,
        meds: &["313782"],
        procedures: &["38102005"],
        labs: &[Panel::Cbc, Panel::Metabolic],
        admit: 0.6,
        complaint: "right upper quadrant pain after meals",
        plan: "Ultrasound confirms gallstones; laparoscopic cholecystectomy.",
    },
];

// ---- Medicines ---------------------------------------------------------------------------

/// SNOMED dose forms.
pub(super) const TABLET: Code = sct("385055001", "Tablet");
pub(super) const CAPSULE: Code = sct("385049006", "Capsule");
pub(super) const ORAL_SOLUTION: Code = sct("385023001", "Oral solution");
pub(super) const INJECTION: Code = sct("385219001", "Solution for injection");
pub(super) const ORAL_ROUTE: Code = sct("26643006", "Oral route (qualifier value)");

/// A medicine: one `Medication` in the pool, and what a prescription of it says.
pub(super) struct Med {
    pub code: Code,
    pub form: Option<Code>,
    /// Active ingredient (RxNorm ingredient) and strength in mg per unit, when single.
    pub ingredient: Option<(Code, f64)>,
    pub sig: &'static str,
    /// Doses per day (for timing and quantities).
    pub per_day: u32,
    pub oral: bool,
}

const fn med(
    code: Code,
    form: Option<Code>,
    ingredient: Option<(Code, f64)>,
    sig: &'static str,
    per_day: u32,
    oral: bool,
) -> Med {
    Med {
        code,
        form,
        ingredient,
        sig,
        per_day,
        oral,
    }
}

pub(super) static MEDS: &[Med] = &[
    med(
        rx(
            "860975",
            "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
        ),
        Some(TABLET),
        Some((rx("6809", "metformin"), 500.0)),
        "Take 1 tablet by mouth once daily with the evening meal",
        1,
        true,
    ),
    med(
        rx(
            "106892",
            "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML Injectable Suspension",
        ),
        None,
        None,
        "Inject 10 units under the skin twice daily before meals",
        2,
        false,
    ),
    med(
        rx("314076", "lisinopril 10 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("29046", "lisinopril"), 10.0)),
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx("197361", "amlodipine 5 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("17767", "amlodipine"), 5.0)),
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx("310798", "hydrochlorothiazide 25 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("5487", "hydrochlorothiazide"), 25.0)),
        "Take 1 tablet by mouth every morning",
        1,
        true,
    ),
    med(
        rx("316672", "simvastatin 10 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("36567", "simvastatin"), 10.0)),
        "Take 1 tablet by mouth at bedtime",
        1,
        true,
    ),
    med(
        rx("312961", "simvastatin 20 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("36567", "simvastatin"), 20.0)),
        "Take 1 tablet by mouth at bedtime",
        1,
        true,
    ),
    med(
        rx("259255", "atorvastatin 80 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("83367", "atorvastatin"), 80.0)),
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx(
            "866414",
            "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet",
        ),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx(
            "895994",
            "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
        ),
        None,
        None,
        "Inhale 2 puffs twice daily; rinse mouth after use",
        2,
        false,
    ),
    med(
        rx(
            "745679",
            "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        ),
        None,
        None,
        "Inhale 2 puffs every 4 to 6 hours as needed for wheezing",
        4,
        false,
    ),
    med(
        rx(
            "896209",
            "60 ACTUAT fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
        ),
        None,
        None,
        "Inhale 1 puff twice daily",
        2,
        false,
    ),
    med(
        rx("313782", "acetaminophen 325 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("161", "acetaminophen"), 325.0)),
        "Take 2 tablets by mouth every 6 hours as needed for pain or fever",
        4,
        true,
    ),
    med(
        rx("198440", "acetaminophen 500 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("161", "acetaminophen"), 500.0)),
        "Take 1 tablet by mouth every 6 hours as needed for pain",
        4,
        true,
    ),
    med(
        rx("310965", "ibuprofen 200 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("5640", "ibuprofen"), 200.0)),
        "Take 2 tablets by mouth every 8 hours as needed with food",
        3,
        true,
    ),
    med(
        rx("308182", "amoxicillin 250 MG Oral Capsule"),
        Some(CAPSULE),
        Some((rx("723", "amoxicillin"), 250.0)),
        "Take 1 capsule by mouth three times daily for 10 days",
        3,
        true,
    ),
    med(
        rx(
            "562251",
            "amoxicillin 250 MG / clavulanate 125 MG Oral Tablet",
        ),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth every 8 hours for 7 days",
        3,
        true,
    ),
    med(
        rx("834061", "penicillin V potassium 250 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth four times daily for 10 days",
        4,
        true,
    ),
    med(
        rx("997488", "fexofenadine hydrochloride 30 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth twice daily",
        2,
        true,
    ),
    med(
        rx("1014676", "cetirizine hydrochloride 5 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx("849574", "naproxen sodium 220 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth every 12 hours as needed with food",
        2,
        true,
    ),
    med(
        rx(
            "1049221",
            "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet",
        ),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth every 6 hours as needed for severe pain",
        4,
        true,
    ),
    med(
        rx("966222", "levothyroxine sodium 0.075 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth every morning on an empty stomach",
        1,
        true,
    ),
    med(
        rx("312938", "sertraline 100 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("36437", "sertraline"), 100.0)),
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx("313988", "furosemide 40 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("4603", "furosemide"), 40.0)),
        "Take 1 tablet by mouth every morning",
        1,
        true,
    ),
    med(
        rx("855332", "warfarin sodium 5 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth once daily or as directed by the anticoagulation clinic",
        1,
        true,
    ),
    med(
        rx("309362", "clopidogrel 75 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("32968", "clopidogrel"), 75.0)),
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx("243670", "aspirin 81 MG Oral Tablet"),
        Some(TABLET),
        Some((rx("1191", "aspirin"), 81.0)),
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx("705129", "nitroglycerin 0.4 MG/ACTUAT Mucosal Spray"),
        None,
        None,
        "Spray 1 dose under the tongue at onset of chest pain; may repeat every 5 minutes up to 3 doses",
        1,
        false,
    ),
    med(
        rx("904420", "alendronic acid 10 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth once daily with a full glass of water, remain upright 30 minutes",
        1,
        true,
    ),
    med(
        rx("311989", "nitrofurantoin 5 MG/ML Oral Suspension"),
        None,
        None,
        "Take 10 mL by mouth four times daily for 5 days",
        4,
        true,
    ),
    med(
        rx(
            "1094107",
            "phenazopyridine hydrochloride 100 MG Oral Tablet",
        ),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth three times daily for 2 days",
        3,
        true,
    ),
    med(
        rx(
            "1043400",
            "acetaminophen 21.7 MG/ML / dextromethorphan hydrobromide 1 MG/ML / doxylamine succinate 0.417 MG/ML Oral Solution",
        ),
        Some(ORAL_SOLUTION),
        None,
        "Take 30 mL by mouth at bedtime as needed for cough",
        1,
        true,
    ),
    med(
        rx("205923", "1 ML epoetin alfa 4000 UNT/ML Injection"),
        Some(INJECTION),
        None,
        "Inject 4000 units under the skin three times weekly",
        1,
        false,
    ),
    med(
        rx("310325", "ferrous sulfate 325 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth once daily",
        1,
        true,
    ),
    med(
        rx("997224", "donepezil hydrochloride 10 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth at bedtime",
        1,
        true,
    ),
    med(
        rx("105585", "methotrexate 2.5 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 6 tablets by mouth once weekly",
        1,
        true,
    ),
    med(
        rx(
            "1870230",
            "NDA020800 0.3 ML epinephrine 1 MG/ML Auto-Injector",
        ),
        None,
        None,
        "Inject into the outer thigh once for anaphylaxis and call 911",
        1,
        false,
    ),
    med(
        rx("1049630", "diphenhydramine hydrochloride 25 MG Oral Tablet"),
        Some(TABLET),
        None,
        "Take 1 tablet by mouth every 6 hours as needed for itching",
        4,
        true,
    ),
    med(
        rx(
            "1659131",
            "piperacillin 4000 MG / tazobactam 500 MG Injection",
        ),
        Some(INJECTION),
        None,
        "Infuse intravenously every 6 hours",
        4,
        false,
    ),
];

/// The medicine with an RxNorm code (the links in the condition tables are by code so they
/// read as what they mean).
pub(super) fn med_index(rxnorm: &str) -> Option<usize> {
    MEDS.iter().position(|m| m.code.code == rxnorm)
}

// ---- Vaccines ----------------------------------------------------------------------------

/// A vaccine given at well visits to patients in an age window, once the vaccine exists.
pub(super) struct Vaccine {
    pub code: Code,
    pub min_months: i64,
    pub max_months: i64,
    pub from_year: i64,
    pub doses: u32,
}

const fn vax(code: Code, min_months: i64, max_months: i64, from_year: i64, doses: u32) -> Vaccine {
    Vaccine {
        code,
        min_months,
        max_months,
        from_year,
        doses,
    }
}

pub(super) const FLU: Code = cvx("140", "Influenza, seasonal, injectable, preservative free");
pub(super) const COVID: Code = cvx(
    "208",
    "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
);

pub(super) static VACCINES: &[Vaccine] = &[
    vax(cvx("08", "Hep B, adolescent or pediatric"), 0, 18, 1990, 3),
    vax(cvx("20", "DTaP"), 2, 72, 1992, 5),
    vax(cvx("10", "IPV"), 2, 72, 1990, 4),
    vax(cvx("49", "Hib (PRP-OMP)"), 2, 15, 1990, 3),
    vax(cvx("133", "Pneumococcal conjugate PCV 13"), 2, 15, 2010, 4),
    vax(cvx("116", "rotavirus, pentavalent"), 2, 8, 2006, 3),
    vax(cvx("03", "MMR"), 12, 72, 1990, 2),
    vax(cvx("21", "varicella"), 12, 72, 1995, 2),
    vax(cvx("83", "Hep A, ped/adol, 2 dose"), 12, 24, 1996, 2),
    vax(cvx("115", "Tdap"), 132, 156, 2005, 1),
    vax(cvx("62", "HPV, quadrivalent"), 132, 312, 2006, 2),
    vax(cvx("114", "meningococcal MCV4P"), 132, 216, 2005, 2),
    vax(
        cvx("113", "Td (adult) preservative free"),
        228,
        1200,
        1995,
        3,
    ),
    vax(cvx("43", "Hep B, adult"), 228, 720, 1990, 3),
    vax(
        cvx("33", "pneumococcal polysaccharide vaccine, 23 valent"),
        780,
        1200,
        1995,
        1,
    ),
    vax(cvx("187", "zoster recombinant"), 600, 1200, 2017, 2),
];

// ---- Procedures ----------------------------------------------------------------------------

/// A procedure and how long it takes.
pub(super) struct ProcedureDef {
    pub code: Code,
    pub minutes: i64,
    /// Surgery gets a procedure note and happens in hospital.
    pub surgical: bool,
}

const fn proc_(code: Code, minutes: i64, surgical: bool) -> ProcedureDef {
    ProcedureDef {
        code,
        minutes,
        surgical,
    }
}

pub(super) static PROCEDURES: &[ProcedureDef] = &[
    proc_(
        sct("430193006", "Medication Reconciliation (procedure)"),
        15,
        false,
    ),
    proc_(
        sct("171207006", "Depression screening (procedure)"),
        10,
        false,
    ),
    proc_(
        sct(
            "710824005",
            "Assessment of health and social care needs (procedure)",
        ),
        15,
        false,
    ),
    proc_(
        sct(
            "428191000124101",
            "Documentation of current medications (procedure)",
        ),
        5,
        false,
    ),
    proc_(sct("117015009", "Throat culture (procedure)"), 5, false),
    proc_(sct("399208008", "Plain chest X-ray (procedure)"), 20, false),
    proc_(
        sct("29303009", "Electrocardiographic procedure (procedure)"),
        15,
        false,
    ),
    proc_(sct("127783003", "Spirometry (procedure)"), 20, false),
    proc_(sct("73761001", "Colonoscopy (procedure)"), 45, false),
    proc_(sct("71651007", "Mammography (procedure)"), 20, false),
    proc_(
        sct("274474001", "Bone immobilization (procedure)"),
        30,
        false,
    ),
    proc_(
        sct("395142003", "Allergy screening test (procedure)"),
        30,
        false,
    ),
    proc_(sct("80146002", "Appendectomy (procedure)"), 60, true),
    proc_(sct("38102005", "Cholecystectomy (procedure)"), 90, true),
    proc_(
        sct("609588000", "Total knee replacement (procedure)"),
        120,
        true,
    ),
    proc_(
        sct("52734007", "Total replacement of hip (procedure)"),
        120,
        true,
    ),
    proc_(
        sct("232717009", "Coronary artery bypass grafting (procedure)"),
        240,
        true,
    ),
    proc_(
        sct(
            "415070008",
            "Percutaneous coronary intervention (procedure)",
        ),
        90,
        true,
    ),
    proc_(
        sct(
            "18286008",
            "Catheter ablation of tissue of heart (procedure)",
        ),
        180,
        true,
    ),
];

/// The procedure with a SNOMED code.
pub(super) fn procedure(snomed: &str) -> Option<&'static ProcedureDef> {
    PROCEDURES.iter().find(|p| p.code.code == snomed)
}

/// Planned (elective) admissions for a long-term condition: (condition SNOMED, surgery
/// SNOMED, device SNOMED implanted). Each patient with the condition has a small chance of
/// one.
pub(super) static ELECTIVE: &[(&str, &str, Option<&str>)] = &[
    ("239873007", "609588000", None),
    ("239872002", "52734007", Some("468063009")),
    ("53741008", "415070008", Some("65818007")),
    ("53741008", "232717009", None),
    ("49436004", "18286008", None),
];

/// Screening procedures at adult wellness visits: (SNOMED, min age, female only, chance).
pub(super) static SCREENINGS: &[(&str, i64, bool, f64)] = &[
    ("73761001", 50, false, 0.04),
    ("71651007", 40, true, 0.25),
    ("127783003", 40, false, 0.02),
];

// ---- Devices -------------------------------------------------------------------------------

/// An implanted or home device type.
pub(super) struct DeviceDef {
    pub code: Code,
    pub manufacturer: &'static str,
    pub model: &'static str,
    pub implanted: bool,
}

pub(super) static DEVICES: &[DeviceDef] = &[
    DeviceDef {
        code: sct("14106009", "Cardiac pacemaker, device (physical object)"),
        manufacturer: "Northfield Cardiac Devices",
        model: "NC-200 DR",
        implanted: true,
    },
    DeviceDef {
        code: sct(
            "72506001",
            "Implantable defibrillator, device (physical object)",
        ),
        manufacturer: "Northfield Cardiac Devices",
        model: "NC-ICD 5",
        implanted: true,
    },
    DeviceDef {
        code: sct("65818007", "Stent, device (physical object)"),
        manufacturer: "Harbor Vascular",
        model: "HV Everolimus 3.0 x 18",
        implanted: true,
    },
    DeviceDef {
        code: sct(
            "468063009",
            "Coated femoral stem prosthesis, modular (physical object)",
        ),
        manufacturer: "Keystone Orthopedics",
        model: "KO Femoral Stem 12",
        implanted: true,
    },
    DeviceDef {
        code: sct("337414009", "Blood glucose meters (physical object)"),
        manufacturer: "Lakeside Diagnostics",
        model: "GlucoRead 2",
        implanted: false,
    },
];

/// The device with a SNOMED code.
pub(super) fn device(snomed: &str) -> Option<&'static DeviceDef> {
    DEVICES.iter().find(|d| d.code.code == snomed)
}

// ---- Allergies -----------------------------------------------------------------------------

/// An allergy or intolerance.
pub(super) struct AllergyDef {
    pub code: Code,
    /// `food`, `medication`, `environment` or `biologic`.
    pub category: &'static str,
    pub weight: u32,
    pub reactions: &'static [Code],
    /// Severe reactions come with an epinephrine prescription.
    pub severe: bool,
}

const HIVES: Code = sct("247472004", "Wheal (finding)");
const RASH: Code = sct("271807003", "Eruption of skin (disorder)");
const ANAPHYLAXIS: Code = sct("39579001", "Anaphylaxis (disorder)");
const RHINO: Code = sct("878820003", "Rhinoconjunctivitis (disorder)");
const DYSPNEA: Code = sct("267036007", "Dyspnea (finding)");
const ITCHING: Code = sct("418290006", "Itching (finding)");
const NAUSEA: Code = sct("422587007", "Nausea (finding)");
const COUGH: Code = sct("49727002", "Cough (finding)");

pub(super) static ALLERGIES: &[AllergyDef] = &[
    AllergyDef {
        code: rx("7980", "penicillin G"),
        category: "medication",
        weight: 30,
        reactions: &[HIVES, RASH, ANAPHYLAXIS],
        severe: false,
    },
    AllergyDef {
        code: rx("10831", "sulfamethoxazole"),
        category: "medication",
        weight: 12,
        reactions: &[RASH, ITCHING],
        severe: false,
    },
    AllergyDef {
        code: rx("2670", "codeine"),
        category: "medication",
        weight: 8,
        reactions: &[NAUSEA, ITCHING],
        severe: false,
    },
    AllergyDef {
        code: rx("1191", "aspirin"),
        category: "medication",
        weight: 5,
        reactions: &[HIVES, DYSPNEA],
        severe: false,
    },
    AllergyDef {
        code: sct("256349002", "Peanut - dietary (substance)"),
        category: "food",
        weight: 10,
        reactions: &[HIVES, ANAPHYLAXIS, DYSPNEA],
        severe: true,
    },
    AllergyDef {
        code: sct("735029006", "Shellfish (substance)"),
        category: "food",
        weight: 8,
        reactions: &[HIVES, NAUSEA],
        severe: true,
    },
    AllergyDef {
        code: sct("102263004", "Eggs (edible) (substance)"),
        category: "food",
        weight: 5,
        reactions: &[RASH, NAUSEA],
        severe: false,
    },
    AllergyDef {
        code: sct("3718001", "Cow's milk (substance)"),
        category: "food",
        weight: 5,
        reactions: &[NAUSEA, RASH],
        severe: false,
    },
    AllergyDef {
        code: sct("111088007", "Latex (substance)"),
        category: "environment",
        weight: 5,
        reactions: &[HIVES, ITCHING],
        severe: false,
    },
    AllergyDef {
        code: sct("264287008", "Animal dander (substance)"),
        category: "environment",
        weight: 12,
        reactions: &[RHINO, COUGH],
        severe: false,
    },
    AllergyDef {
        code: sct("256277009", "Grass pollen (substance)"),
        category: "environment",
        weight: 15,
        reactions: &[RHINO, COUGH],
        severe: false,
    },
    AllergyDef {
        code: sct("260147004", "House dust mite (substance)"),
        category: "environment",
        weight: 12,
        reactions: &[RHINO, COUGH, DYSPNEA],
        severe: false,
    },
    AllergyDef {
        code: sct("288328004", "Bee venom (substance)"),
        category: "environment",
        weight: 6,
        reactions: &[HIVES, ANAPHYLAXIS],
        severe: true,
    },
    AllergyDef {
        code: sct("84489001", "Mold (organism)"),
        category: "environment",
        weight: 6,
        reactions: &[RHINO, COUGH],
        severe: false,
    },
];

// ---- Laboratory ----------------------------------------------------------------------------

/// One laboratory test with its UCUM unit and reference range.
pub(super) struct Lab {
    pub code: Code,
    pub unit: &'static str,
    pub ucum: &'static str,
    pub places: usize,
    pub low: f64,
    pub high: f64,
}

const fn lab(
    code: Code,
    unit: &'static str,
    ucum: &'static str,
    places: usize,
    low: f64,
    high: f64,
) -> Lab {
    Lab {
        code,
        unit,
        ucum,
        places,
        low,
        high,
    }
}

pub(super) const GLUCOSE: Lab = lab(
    lnc("2339-0", "Glucose [Mass/volume] in Blood"),
    "mg/dL",
    "mg/dL",
    0,
    70.0,
    99.0,
);
pub(super) const UREA_N: Lab = lab(
    lnc("6299-2", "Urea nitrogen [Mass/volume] in Blood"),
    "mg/dL",
    "mg/dL",
    0,
    7.0,
    20.0,
);
pub(super) const CREATININE: Lab = lab(
    lnc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    "mg/dL",
    "mg/dL",
    2,
    0.6,
    1.2,
);
pub(super) const CALCIUM: Lab = lab(
    lnc("49765-1", "Calcium [Mass/volume] in Blood"),
    "mg/dL",
    "mg/dL",
    1,
    8.5,
    10.2,
);
pub(super) const SODIUM: Lab = lab(
    lnc("2951-2", "Sodium [Moles/volume] in Serum or Plasma"),
    "mmol/L",
    "mmol/L",
    0,
    135.0,
    145.0,
);
pub(super) const POTASSIUM: Lab = lab(
    lnc("2823-3", "Potassium [Moles/volume] in Serum or Plasma"),
    "mmol/L",
    "mmol/L",
    1,
    3.5,
    5.1,
);
pub(super) const CHLORIDE: Lab = lab(
    lnc("2069-3", "Chloride [Moles/volume] in Blood"),
    "mmol/L",
    "mmol/L",
    0,
    98.0,
    107.0,
);
pub(super) const CO2: Lab = lab(
    lnc("20565-8", "Carbon dioxide, total [Moles/volume] in Blood"),
    "mmol/L",
    "mmol/L",
    0,
    22.0,
    29.0,
);
pub(super) const A1C: Lab = lab(
    lnc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    "%",
    "%",
    1,
    4.0,
    5.6,
);
pub(super) const TSH: Lab = lab(
    lnc("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
    "mIU/L",
    "m[IU]/L",
    2,
    0.4,
    4.0,
);
pub(super) const EGFR: Lab = lab(
    lnc(
        "33914-3",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)",
    ),
    "mL/min/{1.73_m2}",
    "mL/min/{1.73_m2}",
    0,
    60.0,
    120.0,
);
pub(super) const WBC: Lab = lab(
    lnc(
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
    ),
    "10*3/uL",
    "10*3/uL",
    1,
    4.5,
    11.0,
);
pub(super) const RBC: Lab = lab(
    lnc(
        "789-8",
        "Erythrocytes [#/volume] in Blood by Automated count",
    ),
    "10*6/uL",
    "10*6/uL",
    2,
    4.2,
    5.9,
);
pub(super) const HGB: Lab = lab(
    lnc("718-7", "Hemoglobin [Mass/volume] in Blood"),
    "g/dL",
    "g/dL",
    1,
    12.0,
    17.5,
);
pub(super) const HCT: Lab = lab(
    lnc(
        "4544-3",
        "Hematocrit [Volume Fraction] of Blood by Automated count",
    ),
    "%",
    "%",
    1,
    36.0,
    50.0,
);
pub(super) const MCV: Lab = lab(
    lnc("787-2", "MCV [Entitic volume] by Automated count"),
    "fL",
    "fL",
    1,
    80.0,
    100.0,
);
pub(super) const PLATELETS: Lab = lab(
    lnc("777-3", "Platelets [#/volume] in Blood by Automated count"),
    "10*3/uL",
    "10*3/uL",
    0,
    150.0,
    400.0,
);
pub(super) const CHOLESTEROL: Lab = lab(
    lnc("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"),
    "mg/dL",
    "mg/dL",
    0,
    0.0,
    200.0,
);
pub(super) const TRIGLYCERIDES: Lab = lab(
    lnc("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"),
    "mg/dL",
    "mg/dL",
    0,
    0.0,
    150.0,
);
pub(super) const HDL: Lab = lab(
    lnc(
        "2085-9",
        "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
    ),
    "mg/dL",
    "mg/dL",
    0,
    40.0,
    100.0,
);
pub(super) const LDL: Lab = lab(
    lnc(
        "18262-6",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
    ),
    "mg/dL",
    "mg/dL",
    0,
    0.0,
    130.0,
);
pub(super) const URINE_SG: Lab = lab(
    lnc("5811-5", "Specific gravity of Urine by Test strip"),
    "{SG}",
    "{SG}",
    3,
    1.005,
    1.030,
);
pub(super) const URINE_PH: Lab = lab(
    lnc("5803-2", "pH of Urine by Test strip"),
    "[pH]",
    "[pH]",
    1,
    5.0,
    8.0,
);

/// The LOINC code of a panel (for its panel Observation, order and report), and whether it
/// is a urine test.
pub(super) fn panel_code(p: Panel) -> (Code, bool) {
    match p {
        Panel::Cbc => (
            lnc("58410-2", "CBC panel - Blood by Automated count"),
            false,
        ),
        Panel::Metabolic => (lnc("51990-0", "Basic metabolic panel - Blood"), false),
        Panel::Lipid => (
            lnc("57698-3", "Lipid panel with direct LDL - Serum or Plasma"),
            false,
        ),
        Panel::A1c => (A1C.code, false),
        Panel::Tsh => (TSH.code, false),
        Panel::Renal => (EGFR.code, false),
        Panel::Urinalysis => (lnc("24356-8", "Urinalysis complete panel - Urine"), true),
    }
}

/// The member tests of a panel (one test for single-test "panels").
pub(super) fn panel_members(p: Panel) -> &'static [&'static Lab] {
    match p {
        Panel::Cbc => &[&WBC, &RBC, &HGB, &HCT, &MCV, &PLATELETS],
        Panel::Metabolic => &[
            &GLUCOSE,
            &UREA_N,
            &CREATININE,
            &CALCIUM,
            &SODIUM,
            &POTASSIUM,
            &CHLORIDE,
            &CO2,
        ],
        Panel::Lipid => &[&CHOLESTEROL, &TRIGLYCERIDES, &LDL, &HDL],
        Panel::A1c => &[&A1C, &GLUCOSE],
        Panel::Tsh => &[&TSH],
        Panel::Renal => &[&CREATININE, &EGFR],
        Panel::Urinalysis => &[&URINE_SG, &URINE_PH],
    }
}

pub(super) const BLOOD_SPECIMEN: Code = sct("119297000", "Blood specimen (specimen)");
pub(super) const URINE_SPECIMEN: Code = sct("122575003", "Urine specimen (specimen)");
pub(super) const LAB_CATEGORY: Code = code(V2_0074, "LAB", "Laboratory");
pub(super) const LAB_ORDER_CATEGORY: Code = sct("108252007", "Laboratory procedure (procedure)");
pub(super) const IMAGING_ORDER_CATEGORY: Code = sct("363679005", "Imaging (procedure)");

// ---- Vital signs and social history ------------------------------------------------------

pub(super) const HEART_RATE: Code = lnc("8867-4", "Heart rate");
pub(super) const BP_PANEL: Code = lnc("85354-9", "Blood pressure panel with all children optional");
pub(super) const SYSTOLIC: Code = lnc("8480-6", "Systolic blood pressure");
pub(super) const DIASTOLIC: Code = lnc("8462-4", "Diastolic blood pressure");
pub(super) const WEIGHT: Code = lnc("29463-7", "Body weight");
pub(super) const HEIGHT: Code = lnc("8302-2", "Body height");
pub(super) const BMI: Code = lnc("39156-5", "Body mass index (BMI) [Ratio]");
pub(super) const TEMPERATURE: Code = lnc("8310-5", "Body temperature");
pub(super) const RESP_RATE: Code = lnc("9279-1", "Respiratory rate");
pub(super) const SPO2: Code = lnc(
    "59408-5",
    "Oxygen saturation in Arterial blood by Pulse oximetry",
);
pub(super) const SAO2: Code = lnc("2708-6", "Oxygen saturation in Arterial blood");
pub(super) const PAIN: Code = lnc(
    "72514-3",
    "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
);
pub(super) const SMOKING: Code = lnc("72166-2", "Tobacco smoking status");
pub(super) const SOCIAL_NARRATIVE: Code = lnc("29762-2", "Social history Narrative");
pub(super) const PHQ2: Code = lnc(
    "55758-7",
    "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]",
);

/// Smoking status answers with weights (never, former, daily, occasional).
pub(super) static SMOKING_STATUS: &[(Code, u32)] = &[
    (sct("266919005", "Never smoked tobacco (finding)"), 60),
    (sct("8517006", "Ex-smoker (finding)"), 22),
    (sct("449868002", "Smokes tobacco daily (finding)"), 13),
    (
        sct("428041000124106", "Occasional tobacco smoker (finding)"),
        5,
    ),
];

// ---- Encounters ------------------------------------------------------------------------------

pub(super) const AMB: Code = code(V3_ACT_CODE, "AMB", "ambulatory");
pub(super) const EMER: Code = code(V3_ACT_CODE, "EMER", "emergency");
pub(super) const IMP: Code = code(V3_ACT_CODE, "IMP", "inpatient encounter");
pub(super) const VR: Code = code(V3_ACT_CODE, "VR", "virtual");
pub(super) const HH: Code = code(V3_ACT_CODE, "HH", "home health");

pub(super) const CHECKUP: Code = sct("185349003", "Encounter for check up (procedure)");
pub(super) const WELL_CHILD: Code = sct("410620009", "Well child visit (procedure)");
pub(super) const SYMPTOM_VISIT: Code = sct("185345009", "Encounter for symptom (procedure)");
pub(super) const FOLLOW_UP: Code = sct("390906007", "Follow-up encounter (procedure)");
pub(super) const PROBLEM_VISIT: Code = sct("185347001", "Encounter for problem (procedure)");
pub(super) const TELEMEDICINE: Code = sct(
    "448337001",
    "Telemedicine consultation with patient (procedure)",
);
pub(super) const HOME_VISIT: Code = sct("439708006", "Home visit (procedure)");
pub(super) const ED_VISIT: Code = sct("50849002", "Emergency room admission (procedure)");
pub(super) const ADMISSION: Code = sct("32485007", "Hospital admission (procedure)");
pub(super) const EMERGENCY_ADMISSION: Code =
    sct("183452005", "Emergency hospital admission (procedure)");
pub(super) const CONSULTATION: Code = sct("698314001", "Consultation for treatment (procedure)");

/// Practice settings (SNOMED) for Encounter.serviceType and PractitionerRole.specialty.
pub(super) const GENERAL_PRACTICE: Code = sct(
    "394814009",
    "General practice (specialty) (qualifier value)",
);
pub(super) const GENERAL_MEDICINE: Code = sct("394802001", "General medicine (qualifier value)");
pub(super) const PEDIATRICS: Code = sct("394537008", "Pediatric specialty (qualifier value)");
pub(super) const EMERGENCY_MEDICINE: Code = sct(
    "394576009",
    "Surgical-accident and emergency (qualifier value)",
);
pub(super) const GENERAL_SURGERY: Code = sct("394609007", "General surgery (qualifier value)");
pub(super) const CARDIOLOGY: Code = sct("394579002", "Cardiology (qualifier value)");
pub(super) const SPECIALTIES: &[Code] = &[
    GENERAL_PRACTICE,
    GENERAL_MEDICINE,
    PEDIATRICS,
    EMERGENCY_MEDICINE,
    GENERAL_SURGERY,
    CARDIOLOGY,
    sct("394583002", "Endocrinology (qualifier value)"),
    sct("394585009", "Obstetrics and gynecology (qualifier value)"),
    sct("394591006", "Neurology (qualifier value)"),
    sct("418112009", "Pulmonary medicine (qualifier value)"),
];

pub(super) const ATTENDER: Code = code(
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
    "ATND",
    "attender",
);
pub(super) const PRIMARY_PERFORMER: Code = code(
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
    "PPRF",
    "primary performer",
);

const ADMIT_SOURCE: &str = "http://terminology.hl7.org/CodeSystem/admit-source";
pub(super) const FROM_ED: Code = code(ADMIT_SOURCE, "emd", "From accident/emergency department");
pub(super) const FROM_OUTPATIENT: Code = code(ADMIT_SOURCE, "outp", "From outpatient department");
pub(super) const FROM_GP: Code = code(ADMIT_SOURCE, "gp", "General Practitioner referral");

const DISCHARGE: &str = "http://terminology.hl7.org/CodeSystem/discharge-disposition";
pub(super) static DISCHARGE_TO: &[(Code, u32)] = &[
    (code(DISCHARGE, "home", "Home"), 80),
    (code(DISCHARGE, "snf", "Skilled nursing facility"), 8),
    (code(DISCHARGE, "rehab", "Rehabilitation"), 6),
    (code(DISCHARGE, "other-hcf", "Other healthcare facility"), 4),
    (code(DISCHARGE, "aadvice", "Left against advice"), 2),
];

// ---- Notes ---------------------------------------------------------------------------------

pub(super) const HISTORY_AND_PHYSICAL: Code = lnc("34117-2", "History and physical note");
pub(super) const PROGRESS_NOTE: Code = lnc("11506-3", "Progress note");
pub(super) const DISCHARGE_SUMMARY: Code = lnc("18842-5", "Discharge summary");
pub(super) const CONSULT_NOTE: Code = lnc("11488-4", "Consult note");
pub(super) const PROCEDURE_NOTE: Code = lnc("28570-0", "Procedure note");
pub(super) const ED_NOTE: Code = lnc("34111-5", "Emergency department note");
pub(super) const CLINICAL_NOTE: Code = code(US_CORE_DOC_CATEGORY, "clinical-note", "Clinical Note");
pub(super) const IMAGING_REPORT: Code = lnc("18748-4", "Diagnostic imaging study");
pub(super) const EKG_REPORT: Code = lnc("11524-6", "EKG study");
pub(super) const RADIOLOGY_CATEGORY: Code = code(V2_0074, "RAD", "Radiology");
pub(super) const CARDIOLOGY_CATEGORY: Code = code(V2_0074, "EC", "Electrocardiac");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_between_tables_resolve() {
        for c in CHRONIC {
            for m in c.meds {
                assert!(med_index(m).is_some(), "{} -> {m}", c.snomed.display);
            }
            if let Some(d) = c.device {
                assert!(device(d).is_some(), "{d}");
            }
        }
        for a in ACUTE {
            for m in a.meds {
                assert!(med_index(m).is_some(), "{} -> {m}", a.snomed.display);
            }
            for p in a.procedures {
                assert!(procedure(p).is_some(), "{p}");
            }
        }
        for (c, p, d) in ELECTIVE {
            assert!(CHRONIC.iter().any(|x| x.snomed.code == *c), "{c}");
            assert!(procedure(p).is_some(), "{p}");
            assert!(d.is_none_or(|d| device(d).is_some()), "{d:?}");
        }
        for (p, ..) in SCREENINGS {
            assert!(procedure(p).is_some(), "{p}");
        }
        for (i, snomed) in [
            (HYPERTENSION, "59621000"),
            (DIABETES, "44054006"),
            (HYPERLIPIDEMIA, "55822004"),
            (COPD, "13645005"),
            (ATRIAL_FIBRILLATION, "49436004"),
            (HEART_FAILURE, "84114007"),
            (CKD, "709044004"),
            (HYPOTHYROIDISM, "40930008"),
            (OBESITY, "414916001"),
            (DEPRESSION, "370143000"),
            (ANXIETY, "197480006"),
            (PREDIABETES, "714628002"),
            (ANEMIA, "271737000"),
        ] {
            assert_eq!(CHRONIC[i].snomed.code, snomed);
        }
        let mut codes: Vec<&str> = MEDS.iter().map(|m| m.code.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), MEDS.len(), "duplicate RxNorm code in MEDS");
    }
}
