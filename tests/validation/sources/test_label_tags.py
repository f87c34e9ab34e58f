"""Which DICOM attributes may become labels: never one that identifies (PS3.15 Annex E).

A label is published as a class folder name, in the public manifest and on the data
card, so `check_label_tag` must refuse identifying attributes whichever way they are
spelt, and let the categorical ones through.
"""

from __future__ import annotations

import pytest
from pydicom.datadict import DicomDictionary, keyword_for_tag, tag_for_keyword

from consentgen.errors import ConfigError
from validation.sources.dicom import (
    ANNEX_E_IDENTIFYING,
    NEVER_CATEGORICAL_VRS,
    check_label_tag,
)

CATEGORICAL = ("BodyPartExamined", "Modality", "ViewPosition", "Laterality", "ImageLaterality",
               "PatientPosition", "ImageType", "ScanningSequence")

# what the review named, and the kinds the list must cover
MUST_REFUSE = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "OtherPatientIDs",
    "PatientAddress", "AccessionNumber", "StudyDate", "StudyTime", "SeriesDate", "AcquisitionDate",
    "ContentDate", "StudyDescription", "SeriesDescription", "ProtocolName", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "DeviceSerialNumber",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "ImageComments", "StudyComments", "PatientComments", "AdditionalPatientHistory", "StudyID",
)


def test_every_keyword_of_the_list_is_a_dicom_keyword() -> None:
    """A misspelt keyword would guard nothing."""
    assert len(ANNEX_E_IDENTIFYING) > 250
    assert sorted(k for k in ANNEX_E_IDENTIFYING if tag_for_keyword(k) is None) == []


@pytest.mark.parametrize("keyword", MUST_REFUSE)
def test_identifying_attributes_are_refused_naming_them(keyword: str) -> None:
    assert keyword in ANNEX_E_IDENTIFYING
    with pytest.raises(ConfigError) as refused:
        check_label_tag(keyword)
    message = str(refused.value)
    assert message.startswith(f"--label-from-tag {keyword}: ") and "\n" not in message
    assert "Annex E" in message
    assert message.endswith("such as BodyPartExamined, Modality, ViewPosition or Laterality")


def test_the_hex_spelling_is_refused_under_its_keyword() -> None:
    for spelt in ("0010,0010", "(0010,0010)", "00100010", " ( 0010 , 0010 ) "):
        with pytest.raises(ConfigError, match=r"^--label-from-tag PatientName: an identifying"):
            check_label_tag(spelt)


@pytest.mark.parametrize("tag", ["0009,0010", "(0019,1001)", "00291010", "7FE1,0010"])
def test_private_tags_are_refused(tag: str) -> None:
    with pytest.raises(ConfigError, match=r": a private tag .*use a categorical one"):
        check_label_tag(tag)


def test_overlays_curves_and_unknown_public_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"OverlayData: curve or overlay data"):
        check_label_tag("6000,3000")
    with pytest.raises(ConfigError, match=r"NumberOfPoints: curve or overlay data"):
        check_label_tag("5002,0010")
    with pytest.raises(ConfigError, match=r"\(0018,FFF0\): not an attribute of the public"):
        check_label_tag("0018,FFF0")
    with pytest.raises(ConfigError, match=r"unknown DICOM tag 'PatientNam'"):
        check_label_tag("PatientNam")


def test_names_dates_times_uids_and_free_text_are_refused_even_off_the_list() -> None:
    """Whatever the list misses, an attribute whose values are never categories is refused."""
    off_list = 0
    for tag, entry in DicomDictionary.items():
        keyword = keyword_for_tag(tag)
        if (entry[0] in {"PN", "DA", "DT", "TM", "UI", "LT", "UT"} and keyword
                and not 0x5000 <= tag >> 16 <= 0x60FF):
            off_list += keyword not in ANNEX_E_IDENTIFYING
            with pytest.raises(ConfigError, match=rf"^--label-from-tag {keyword}: "):
                check_label_tag(keyword)
    assert off_list > 0  # the value representations do guard more than the list
    assert {"PN", "DA", "DT", "TM", "UI"} <= NEVER_CATEGORICAL_VRS


@pytest.mark.parametrize("keyword", CATEGORICAL)
def test_categorical_attributes_pass(keyword: str) -> None:
    assert check_label_tag(keyword) == tag_for_keyword(keyword)
