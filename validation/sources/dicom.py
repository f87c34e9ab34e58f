"""DICOM at ingest: one displayable 8-bit frame from an untrusted file, and which of its
attributes may become a label.

What a radiologist would see is what we keep: the display pipeline (Modality LUT, VOI
LUT or window, MONOCHROME1 inverted, palette colour, deep RGB) is
`validation.sources.dicom_display`; YBR is converted to RGB by pydicom.

Compressed transfer syntaxes are decoded when pydicom has a plugin for them (Pillow
covers JPEG baseline and JPEG 2000, pydicom itself RLE); otherwise the file is
quarantined as `dicom_codec_unavailable` with the packages that would decode it. Files
without pixel data (structured reports, RT plans) are `dicom_no_pixel_data`.

A label is published (class folders, the public manifest, the data card), so
`check_label_tag` refuses an attribute that identifies (PS3.15 Annex E,
`ANNEX_E_IDENTIFYING`) before any file is read.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.pixels import pixel_array as _pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from consentgen.errors import ConfigError, DecodeError
from validation.sources.pixels import (
    DecodeConfig,
    DecodedImage,
    Reason,
    check_frames,
    check_pixels,
    short_error,
)
from validation.sources.dicom_display import apply_window, to_image

__all__ = ["ANNEX_E_IDENTIFYING", "apply_window", "check_label_tag", "decode_dicom",
           "looks_like_dicom", "resolve_tag", "tag_keyword", "tag_text"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_TAG_TEXT = re.compile(r"^\(?\s*([0-9a-fA-F]{4})\s*,?\s*([0-9a-fA-F]{4})\s*\)?$")


def looks_like_dicom(data: bytes) -> bool:
    """A Part 10 file ("DICM" after the 128-byte preamble), or a bare dataset that starts
    with a group 0002/0008 element in either byte order (old exports without preamble)."""
    if data[128:132] == b"DICM":
        return True
    return data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08") and len(data) >= 8


def resolve_tag(name: str) -> int:
    """A tag from a keyword ("PatientID") or hex ("0010,0020", "(0010,0020)", "00100020")."""
    text = name.strip()
    match = _TAG_TEXT.match(text)
    if match:
        return int(match.group(1) + match.group(2), 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise ConfigError(f"unknown DICOM tag {name!r}: use a keyword like PatientID or gggg,eeee")
    return int(tag)


# DICOM PS3.15 Annex E (Attribute Confidentiality Profiles), Table E.1-1: the attributes
# the Basic Application Level Confidentiality Profile removes or replaces because they
# identify, or help identify, a patient, a clinician, an institution, a device or a
# study. A label becomes a class folder name, a manifest column and a count on the data
# card, so none of these may ever be one. The list holds the table's keywords by kind;
# `check_label_tag` also refuses every attribute of a value representation that is never
# a category (names, dates, times, ages, UIDs, free text, sequences), private tags, and
# the overlay and curve repeating groups, so what the list misses they still catch.
ANNEX_E_IDENTIFYING: frozenset[str] = frozenset(
    # the patient: identity, demographics, history, contacts
    """PatientName PatientID IssuerOfPatientID OtherPatientIDs OtherPatientIDsSequence
    OtherPatientNames PatientBirthName PatientMotherBirthName PatientBirthDate PatientBirthTime
    PatientAge PatientSex PatientSexNeutered PatientSize PatientWeight PatientAddress
    PatientTelephoneNumbers CountryOfResidence RegionOfResidence EthnicGroup Occupation
    PatientReligiousPreference MilitaryRank BranchOfService MedicalRecordLocator
    PatientInsurancePlanCodeSequence InsurancePlanIdentification PatientPrimaryLanguageCodeSequence
    PatientPrimaryLanguageModifierCodeSequence PatientComments PatientState
    PatientTransportArrangements PatientInstitutionResidence ScheduledPatientInstitutionResidence
    CurrentPatientLocation AdditionalPatientHistory MedicalAlerts Allergies SmokingStatus
    PregnancyStatus LastMenstrualDate SpecialNeeds PreMedication ReferencedPatientSequence
    ReferencedPatientAliasSequence ResponsiblePerson ResponsibleOrganization
    ConfidentialityConstraintOnPatientDataDescription"""
    # visits, admissions, orders and requests
    """ AdmissionID IssuerOfAdmissionID AdmittingDate AdmittingTime AdmittingDiagnosesDescription
    AdmittingDiagnosesCodeSequence DischargeDate DischargeTime DischargeDiagnosisDescription
    ScheduledAdmissionDate ScheduledAdmissionTime ScheduledDischargeDate ScheduledDischargeTime
    ServiceEpisodeID IssuerOfServiceEpisodeID ServiceEpisodeDescription VisitComments
    AccessionNumber PlacerOrderNumberImagingServiceRequest FillerOrderNumberImagingServiceRequest
    IssueDateOfImagingServiceRequest IssueTimeOfImagingServiceRequest OrderEnteredBy
    OrderEntererLocation OrderCallbackPhoneNumber ReasonForTheImagingServiceRequest
    ReasonForStudy RequestAttributesSequence RequestedProcedureID RequestedProcedureDescription
    RequestedProcedureComments RequestedProcedureLocation RequestedContrastAgent
    RequestingPhysician RequestingService ImagingServiceRequestComments"""
    # the study, series and procedure: ids, descriptions, comments, results
    """ StudyID StudyIDIssuer StudyDescription StudyComments SeriesDescription ProtocolName
    AcquisitionComments AcquisitionProtocolDescription AcquisitionDeviceProcessingDescription
    AcquisitionContextSequence ContrastBolusAgent DerivationDescription ImageComments
    FrameComments ImagePresentationComments IdentifyingComments TextComments TextString
    ModifiedImageDescription PerformedProcedureStepID PerformedProcedureStepDescription
    CommentsOnThePerformedProcedureStep PerformedLocation ScheduledProcedureStepDescription
    ScheduledProcedureStepLocation ScheduledStudyLocation ScheduledStudyLocationAETitle
    ContentSequence ContributionDescription GraphicAnnotationSequence IconImageSequence
    SourceImageSequence ReferencedImageSequence ReferencedStudySequence
    ReferencedPerformedProcedureStepSequence ResultsComments ResultsIDIssuer
    ResultsDistributionListSequence DistributionName DistributionAddress Impressions
    InterpretationText InterpretationDiagnosisDescription InterpretationIDIssuer
    TopicTitle TopicSubject TopicAuthor TopicKeywords ModifiedAttributesSequence
    OriginalAttributesSequence DataSetTrailingPadding"""
    # clinical trials
    """ ClinicalTrialSponsorName ClinicalTrialProtocolID ClinicalTrialProtocolName
    ClinicalTrialSiteID ClinicalTrialSiteName ClinicalTrialSubjectID ClinicalTrialSubjectReadingID
    ClinicalTrialTimePointID ClinicalTrialTimePointDescription ClinicalTrialCoordinatingCenterName
    ClinicalTrialProtocolEthicsCommitteeName ClinicalTrialProtocolEthicsCommitteeApprovalNumber
    ClinicalTrialSeriesID ClinicalTrialSeriesDescription"""
    # dates and times
    """ StudyDate StudyTime SeriesDate SeriesTime AcquisitionDate AcquisitionTime
    AcquisitionDateTime ContentDate ContentTime InstanceCreationDate InstanceCreationTime
    InstanceCoercionDateTime OverlayDate OverlayTime CurveDate CurveTime
    PerformedProcedureStepStartDate PerformedProcedureStepStartTime PerformedProcedureStepEndDate
    PerformedProcedureStepEndTime ScheduledProcedureStepStartDate ScheduledProcedureStepStartTime
    ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime StartAcquisitionDateTime
    EndAcquisitionDateTime ExpectedCompletionDateTime FrameAcquisitionDateTime
    FrameReferenceDateTime DateOfLastCalibration TimeOfLastCalibration DateOfSecondaryCapture
    TimeOfSecondaryCapture DateOfLastDetectorCalibration TimeOfLastDetectorCalibration
    StructureSetDate StructureSetTime RTPlanDate RTPlanTime TreatmentDate TreatmentTime
    RadiopharmaceuticalStartTime RadiopharmaceuticalStopTime RadiopharmaceuticalStartDateTime
    RadiopharmaceuticalStopDateTime ContrastBolusStartTime ContrastBolusStopTime
    InterventionDrugStartTime InterventionDrugStopTime DecayCorrectionDateTime
    PresentationCreationDate PresentationCreationTime ObservationDateTime ContributionDateTime
    DigitalSignatureDateTime TimezoneOffsetFromUTC"""
    # institutions and stations
    """ InstitutionName InstitutionAddress InstitutionCodeSequence InstitutionalDepartmentName
    StationName StationAETitle PerformedStationName PerformedStationAETitle
    PerformedStationNameCodeSequence PerformedStationGeographicLocationCodeSequence
    ScheduledStationName ScheduledStationAETitle ScheduledStationNameCodeSequence
    ScheduledStationGeographicLocationCodeSequence CustodialOrganizationSequence
    HumanPerformerOrganization VerifyingOrganization"""
    # physicians, operators, observers and other people
    """ ReferringPhysicianName ReferringPhysicianAddress ReferringPhysicianTelephoneNumbers
    ReferringPhysicianIdentificationSequence PerformingPhysicianName
    PerformingPhysicianIdentificationSequence PhysiciansOfRecord
    PhysiciansOfRecordIdentificationSequence NameOfPhysiciansReadingStudy
    PhysiciansReadingStudyIdentificationSequence ScheduledPerformingPhysicianName
    ScheduledPerformingPhysicianIdentificationSequence PhysicianApprovingInterpretation
    OperatorsName OperatorIdentificationSequence HumanPerformerName ActualHumanPerformersSequence
    ScheduledHumanPerformersSequence ContentCreatorName ContentCreatorIdentificationCodeSequence
    AuthorObserverSequence ParticipantSequence VerifyingObserverName VerifyingObserverSequence
    VerifyingObserverIdentificationCodeSequence ReviewerName PersonName PersonAddress
    PersonTelephoneNumbers PersonIdentificationCodeSequence InterpretationAuthor
    InterpretationRecorder InterpretationTranscriber InterpretationApproverSequence
    NamesOfIntendedRecipientsOfResults IntendedRecipientsOfResultsIdentificationSequence"""
    # devices
    """ DeviceSerialNumber DeviceUID DeviceDescription DetectorID GantryID GeneratorID PlateID
    CassetteID ModifyingDeviceID ModifyingDeviceManufacturer SourceSerialNumber"""
    # UIDs and what signs or addresses instances
    """ StudyInstanceUID SeriesInstanceUID SOPInstanceUID MediaStorageSOPInstanceUID
    FrameOfReferenceUID SynchronizationFrameOfReferenceUID ReferencedFrameOfReferenceUID
    RelatedFrameOfReferenceUID ReferencedSOPInstanceUID ReferencedSOPInstanceUIDInFile
    AffectedSOPInstanceUID RequestedSOPInstanceUID FailedSOPInstanceUIDList ConcatenationUID
    DimensionOrganizationUID IrradiationEventUID DoseReferenceUID FiducialUID TargetUID UID
    InstanceCreatorUID CreatorVersionUID ContextGroupExtensionCreatorUID
    TemplateExtensionCreatorUID TemplateExtensionOrganizationUID TransactionUID
    ReferencedGeneralPurposeScheduledProcedureStepTransactionUID StorageMediaFileSetUID
    StorageMediaFileSetID PaletteColorLookupTableUID LargePaletteColorLookupTableUID
    DigitalSignatureUID DigitalSignaturesSequence ReferencedDigitalSignatureSequence
    ReferencedSOPInstanceMACSequence MAC"""
    # specimens (pathology)
    """ SpecimenAccessionNumber SpecimenIdentifier SpecimenUID ContainerIdentifier
    SpecimenDetailedDescription""".split()
)

NEVER_CATEGORICAL_VRS: frozenset[str] = frozenset(
    {"PN", "DA", "DT", "TM", "AS", "UI", "LT", "ST", "UT", "SQ", "OB", "OW", "OF", "OD", "UN"})
"""Value representations no class can be: person names, dates, times, ages, UIDs, free
text, sequences and binary data."""

CATEGORICAL_EXAMPLES = ("BodyPartExamined", "Modality", "ViewPosition", "Laterality")


def check_label_tag(name: str) -> int:
    """The tag of `name` if its values may name classes, else ConfigError in one line.

    A label is published (class folders, the public manifest, counts on the data card),
    so an attribute that identifies (PS3.15 Annex E, `ANNEX_E_IDENTIFYING`), one whose
    values are never categories (`NEVER_CATEGORICAL_VRS`), a private tag (its meaning is
    the vendor's, unknown to us), an overlay or curve, or a tag our dictionary does not
    know is refused before any file is read.
    """
    tag = resolve_tag(name)
    group = tag >> 16
    keyword = keyword_for_tag(tag)
    shown = keyword or f"({group:04X},{tag & 0xFFFF:04X})"
    why = None
    if group % 2:
        why = "a private tag (what it holds is the vendor's, and may identify)"
    elif 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
        why = "curve or overlay data (removed by DICOM PS3.15 Annex E)"
    elif not keyword:
        why = "not an attribute of the public DICOM dictionary"
    elif keyword in ANNEX_E_IDENTIFYING:
        why = "an identifying attribute (DICOM PS3.15 Annex E)"
    elif _vr(tag) in NEVER_CATEGORICAL_VRS:
        why = (f"an attribute of VR {_vr(tag)} (names, dates, times, ages, UIDs, free text "
               "and sequences are never categories)")
    if why is None:
        return tag
    examples = ", ".join(CATEGORICAL_EXAMPLES[:-1]) + f" or {CATEGORICAL_EXAMPLES[-1]}"
    raise ConfigError(f"--label-from-tag {shown}: {why}; labels are published as class folder "
                      f"names, so use a categorical one such as {examples}")


def _vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def tag_text(ds: Dataset, tag: int) -> str | None:
    """The stripped text of a tag's value, or None when absent or empty."""
    elem = ds.get(tag)
    if elem is None or elem.value in (None, "", b""):
        return None
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip().strip("\x00").strip()
    return text or None


def decode_dicom(data: bytes, config: DecodeConfig, *, tags: tuple[str, ...] = ()) -> DecodedImage:
    """Decode the first frame of a DICOM file (see the module docstring); only DecodeError."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")  # pydicom warns on every odd VR; the reasons say enough
        ds = _read(data)
        header = _header(ds, config)
        wanted = {name: tag_text(ds, resolve_tag(name)) for name in tags}
        arr = _first_frame(ds, header["frames"])
        notes = list(header["notes"])
        image = to_image(arr, ds, header["photometric"], config, notes)
    return DecodedImage(
        image=image,
        format="DICOM",
        mode=f"{header['photometric']}/{header['bits']}",
        width=header["columns"],
        height=header["rows"],
        frames=header["frames"],
        notes=tuple(notes),
        tags={k: v for k, v in wanted.items() if v is not None},
    )


def _read(data: bytes) -> Dataset:
    preamble = data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not preamble)
        ds.get("PixelData")  # surfaces a broken element table now, not later
    except Exception as exc:
        raise DecodeError(
            Reason.DICOM_INVALID, f"{type(exc).__name__}: {short_error(exc)}"
        ) from exc
    if not isinstance(ds, Dataset) or len(ds) == 0:
        raise DecodeError(Reason.DICOM_INVALID, "no data elements could be read")
    return ds


def _header(ds: Dataset, config: DecodeConfig) -> dict[str, Any]:
    """The image pixel module, checked before any pixel is decoded."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        if "Rows" in ds and "Columns" in ds:  # pixel data is the last element: cut off
            raise DecodeError(
                Reason.TRUNCATED, "image header present but the pixel data is missing"
            )
        kind = str(ds.get("Modality", "") or ds.get("SOPClassUID", "") or "dataset")
        raise DecodeError(Reason.DICOM_NO_PIXEL_DATA, f"{kind} without pixel data")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits = int(ds.get("BitsStored", ds.BitsAllocated))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = str(ds.PhotometricInterpretation).strip().upper()
    except Exception as exc:
        raise DecodeError(
            Reason.DICOM_INVALID,
            f"image pixel module unusable: {type(exc).__name__}: {short_error(exc)}",
        ) from exc
    if frames < 1 or samples not in (1, 3) or not 1 <= bits <= 64:
        raise DecodeError(
            Reason.DICOM_INVALID, f"frames={frames} samples={samples} bits={bits} out of range"
        )
    check_pixels(columns, rows, config)
    notes = list(check_frames(frames, config))
    notes.extend(_transfer_syntax(ds))
    return {
        "rows": rows,
        "columns": columns,
        "bits": bits,
        "frames": frames,
        "photometric": photometric,
        "notes": notes,
    }


def _transfer_syntax(ds: Dataset) -> list[str]:
    """Make sure a decoder exists for the file's transfer syntax, inferring a missing one."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    notes: list[str] = []
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little
            else ExplicitVRBigEndian
        )
        notes.append(f"no transfer syntax in file; read as {meta.TransferSyntaxUID.name}")
    uid = meta.TransferSyntaxUID
    try:
        decoder = get_decoder(uid)
    except Exception as exc:
        raise DecodeError(
            Reason.DICOM_UNSUPPORTED_TRANSFER_SYNTAX,
            f"no pixel decoder exists for transfer syntax {uid} ({getattr(uid, 'name', '?')})",
        ) from exc
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise DecodeError(
            Reason.DICOM_CODEC_UNAVAILABLE,
            f"{uid.name} needs a plugin that is not installed ({needs})",
        )
    return notes


def _first_frame(ds: Dataset, frames: int) -> np.ndarray:
    try:
        arr = _pixel_array(ds, index=0 if frames > 1 else None)
    except Exception as exc:
        raise DecodeError(
            _pixel_reason(str(exc).lower()), f"pixel data: {type(exc).__name__}: {short_error(exc)}"
        ) from exc
    return np.asarray(arr)


def _pixel_reason(text: str) -> Reason:
    """pydicom wraps every plugin failure in one RuntimeError; its text tells them apart."""
    if "exceeds limit" in text or "decompression bomb" in text:
        return Reason.TOO_MANY_PIXELS  # Pillow's bomb check inside pydicom's JPEG plugin
    if "does not support" in text or "not supported" in text:
        return Reason.DICOM_CODEC_UNAVAILABLE  # e.g. 12-bit JPEG Extended via Pillow
    if any(m in text for m in ("less than", "truncat", "end of file", "insufficient")):
        return Reason.TRUNCATED
    return Reason.CORRUPT_IMAGE


def tag_keyword(tag: int) -> str:
    """A readable name for a tag, for findings and notes."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
