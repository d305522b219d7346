"""Rule labeler: per-label agreement on hand-written sentences (positive, negated, uncertain) and traps."""

import numpy as np
import pytest

from reg2rg.constants import CT_RATE_LABELS
from reg2rg.evaluation.ce import classification_table
from reg2rg.evaluation.rules import LABEL_RULES, NEGATED, POSITIVE, UNCERTAIN, RuleLabeler, clauses

# label -> (present, negated, hedged) sentences, written as chest CT reports phrase them.
HAND_WRITTEN: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Medical material": (
        (
            "A cardiac pacemaker with leads in the right heart chambers is noted.",
            "Sternotomy wires from previous cardiac surgery.",
            "Central venous catheter tip in the superior vena cava.",
            "A stent is seen in the left anterior descending artery.",
        ),
        ("No foreign material or catheter is seen.", "There is no evidence of medical devices."),
        ("A linear hyperdensity, possibly a catheter fragment, is seen.",),
    ),
    "Arterial wall calcification": (
        (
            "Atherosclerotic calcifications are seen in the thoracic aorta.",
            "Calcified plaques in the aortic arch and the carotid arteries.",
            "Mild calcific atheroma of the descending aorta.",
        ),
        ("No calcification of the aortic wall.", "The aorta is normal in caliber without atherosclerotic plaques."),
        ("Possible calcified plaque at the aortic arch.",),
    ),
    "Cardiomegaly": (
        (
            "Cardiomegaly is present.",
            "The heart is enlarged.",
            "Cardiac size is increased with a cardiothoracic ratio of 0.6.",
        ),
        ("No cardiomegaly.", "The heart is not enlarged.", "Cardiomegaly was not observed."),
        ("Borderline cardiomegaly cannot be excluded.",),
    ),
    "Pericardial effusion": (
        (
            "A small pericardial effusion is present.",
            "Minimal fluid in the pericardial recess.",
            "Pericardial effusion reaching 12 mm.",
        ),
        (
            "No pericardial effusion.",
            "Pericardial thickening-effusion was not detected.",
            "There is no pleural or pericardial effusion.",
        ),
        ("Questionable trace pericardial effusion.",),
    ),
    "Coronary artery wall calcification": (
        (
            "Coronary artery calcifications are noted.",
            "Calcified atherosclerotic plaques in the LAD and RCA.",
            "Dense calcification of the coronary arteries.",
        ),
        ("No coronary artery calcification is seen.", "Coronary arteries without calcified plaque."),
        ("Coronary calcification is suspected in the LAD.",),
    ),
    "Hiatal hernia": (
        (
            "A small hiatal hernia is seen.",
            "Sliding hiatus hernia.",
            "Herniation of the stomach through the esophageal hiatus.",
        ),
        ("No hiatal hernia.", "Hiatal hernia was not observed."),
        ("Probable small hiatal hernia.",),
    ),
    "Lymphadenopathy": (
        (
            "Mediastinal lymphadenopathy is present.",
            "Enlarged lymph nodes in the subcarinal station measuring 15 mm.",
            "Lymph nodes of pathological size in the right hilum.",
        ),
        (
            "No lymphadenopathy.",
            "No lymph node in pathological size and appearance was observed in the mediastinum.",
            "Mediastinal lymph nodes are not enlarged.",
        ),
        ("Borderline enlarged lymph nodes, possibly reactive.",),
    ),
    "Emphysema": (
        (
            "Centrilobular emphysema in both upper lobes.",
            "Emphysematous changes are observed in both lungs.",
            "Paraseptal emphysema with subpleural bullae.",
        ),
        ("No emphysema.", "There is no evidence of emphysematous change."),
        ("Mild emphysema may be present in the apices.",),
    ),
    "Atelectasis": (
        (
            "Subsegmental atelectasis in the left lower lobe.",
            "Linear atelectatic changes at both lung bases.",
            "Collapse of the right middle lobe.",
        ),
        ("No atelectasis.", "Atelectasis was not detected in either lung."),
        ("Possible minimal atelectasis at the right base.",),
    ),
    "Lung nodule": (
        (
            "A 6 mm solid nodule in the right upper lobe.",
            "Multiple millimetric pulmonary nodules in both lungs.",
            "A spiculated mass in the left lower lobe.",
        ),
        ("No pulmonary nodule was detected.", "No nodular lesion is seen in the lung parenchyma."),
        ("A small nodular opacity suspicious for a nodule in the left upper lobe.",),
    ),
    "Lung opacity": (
        (
            "Ground-glass opacities in both lower lobes.",
            "Patchy infiltrates in the right lung.",
            "Increased density in the left upper lobe.",
        ),
        ("No ground glass opacity.", "The lungs are clear without infiltrate."),
        ("Faint opacity in the lingula, possibly representing infection.",),
    ),
    "Pulmonary fibrotic sequela": (
        (
            "Fibrotic sequelae in the right upper lobe.",
            "Parenchymal bands consistent with fibrosis at both bases.",
            "Post-inflammatory scarring in the left apex.",
        ),
        ("No fibrotic change in the lungs.", "No pulmonary fibrosis."),
        ("Linear densities likely representing fibrotic sequelae.",),
    ),
    "Pleural effusion": (
        (
            "A small right pleural effusion.",
            "Bilateral pleural effusions, larger on the left.",
            "Fluid in the left pleural space.",
        ),
        ("No pleural effusion.", "Pleural effusion was not observed.", "There is no pleural or pericardial effusion."),
        ("A trace left pleural effusion cannot be excluded.",),
    ),
    "Mosaic attenuation pattern": (
        (
            "Mosaic attenuation pattern in both lungs.",
            "Mosaic perfusion is noted.",
            "Areas of air trapping in the lower lobes.",
        ),
        ("No mosaic attenuation.", "There is no air trapping."),
        ("Possible mosaic attenuation in the right lung.",),
    ),
    "Peribronchial thickening": (
        (
            "Peribronchial thickening in the lower lobes.",
            "Bronchial wall thickening is noted bilaterally.",
            "Thickening of the peribronchial interstitium.",
        ),
        ("No peribronchial thickening.", "No bronchial wall thickening."),
        ("Mild peribronchial thickening may be present.",),
    ),
    "Consolidation": (
        (
            "Consolidation in the right lower lobe.",
            "Consolidative changes with air bronchograms in the left lung.",
            "Lobar consolidation of the left lower lobe.",
        ),
        ("No consolidation.", "Without consolidation in either lung.", "Consolidation was not observed."),
        ("Consolidation versus atelectasis in the left base.",),
    ),
    "Bronchiectasis": (
        (
            "Cylindrical bronchiectasis in the lower lobes.",
            "Bronchiectatic changes in the right middle lobe.",
            "Dilated bronchi in the left lower lobe.",
        ),
        ("No bronchiectasis.", "Bronchiectasis was not detected."),
        ("Possible mild bronchiectasis in the lingula.",),
    ),
    "Interlobular septal thickening": (
        (
            "Interlobular septal thickening in both lungs.",
            "Smooth septal thickening at the lung bases.",
            "Crazy paving pattern in the right upper lobe.",
        ),
        ("No interlobular septal thickening.", "No septal thickening is seen."),
        ("Suspected interlobular septal thickening in the lower lobes.",),
    ),
}
# Hedged sentences above that also name a second finding (present under the default policy).
ALSO_PRESENT = {
    "A small nodular opacity suspicious for a nodule in the left upper lobe.": "Lung opacity",
    "Linear densities likely representing fibrotic sequelae.": "Lung opacity",
    "Consolidation versus atelectasis in the left base.": "Atelectasis",
}
# Sentences that state no CT-RATE finding, including look-alikes of several labels.
NO_FINDING = (
    "A 5 mm hypodense nodule in the right thyroid lobe.",
    "Subcutaneous emphysema in the left chest wall.",
    "Fatty infiltration of the liver.",
    "Compression collapse of the T8 vertebral body.",
    "Heart contour and size are normal.",
    "The shape of heart shadow and large vessels is normal.",
    "Trachea and both main bronchi are open.",
    "No change compared with the previous examination.",
    "Degenerative changes in the thoracic spine.",
    "Bilateral breast tissue is symmetric.",
    "Hepatic cysts are present.",
    "Interventricular septum thickening is noted.",
)


def _cases():
    for label, (present, negated, hedged) in HAND_WRITTEN.items():
        yield from ((label, text, POSITIVE) for text in present)
        yield from ((label, text, NEGATED) for text in negated)
        yield from ((label, text, UNCERTAIN) for text in hedged)


@pytest.fixture(scope="module")
def labeler() -> RuleLabeler:
    return RuleLabeler()


def test_every_label_has_rules_and_hand_written_cases():
    assert set(LABEL_RULES) == set(HAND_WRITTEN) == set(CT_RATE_LABELS)


def test_per_label_agreement_on_hand_written_sentences(labeler):
    cases = list(_cases())
    texts = [text for _, text, _ in cases] + list(NO_FINDING)
    truth = np.zeros((len(texts), len(CT_RATE_LABELS)), dtype=int)
    for row, (label, text, status) in enumerate(cases):
        truth[row, CT_RATE_LABELS.index(label)] = status != NEGATED  # uncertain counts as present by default
        if text in ALSO_PRESENT:
            truth[row, CT_RATE_LABELS.index(ALSO_PRESENT[text])] = 1
    table = classification_table(truth, labeler(texts), CT_RATE_LABELS)
    assert table.loc["micro", "f1"] == 1.0, table[table["f1"] < 1]
    assert (table.loc[list(CT_RATE_LABELS), "f1"] == 1.0).all()


@pytest.mark.parametrize(("label", "text", "status"), list(_cases()))
def test_mention_status(labeler, label, text, status):
    assert (label, status) in labeler.findings(text)


def test_uncertain_policy_negative_drops_hedged_mentions():
    labeler = RuleLabeler(uncertain="negative")
    assert labeler.label("Possible small nodule in the right upper lobe.").sum() == 0
    assert labeler.label("Small nodule in the right upper lobe.")[CT_RATE_LABELS.index("Lung nodule")] == 1


def test_scope_ends_at_clause_breaks(labeler):
    text = (
        "No pleural effusion, but a small pericardial effusion is seen; there is no effusion and the heart is enlarged."
    )
    findings = labeler.findings(text)
    assert ("Pericardial effusion", POSITIVE) in findings and ("Cardiomegaly", POSITIVE) in findings
    assert ("Pleural effusion", NEGATED) in findings
    assert labeler.findings("No change in the size of the nodule in the left lower lobe.") == {
        ("Lung nodule", POSITIVE)
    }


def test_any_positive_mention_makes_the_label_present(labeler):
    row = labeler.label("No pleural effusion on the right. Minimal pleural effusion on the left.")
    assert row[CT_RATE_LABELS.index("Pleural effusion")] == 1


def test_clauses_keep_decimals_and_question_marks():
    assert clauses("Nodule 3.5 mm; atelectasis? No effusion: none") == [
        "nodule 3.5 mm",
        "atelectasis?",
        "no effusion",
        "none",
    ]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="uncertain"):
        RuleLabeler(uncertain="maybe")
    with pytest.raises(ValueError, match="window"):
        RuleLabeler(window=0)


def test_agreement_with_the_synthetic_generator_labels(labeler):
    synthetic = pytest.importorskip("reg2rg.data.synthetic")
    studies = [synthetic.make_study(synthetic.SyntheticConfig(), index=i) for i in range(24)]
    truth = np.array([[study.labels[label] for label in CT_RATE_LABELS] for study in studies])
    table = classification_table(truth, labeler([study.report for study in studies]), CT_RATE_LABELS)
    assert table.loc["micro", "f1"] >= 0.95, table
