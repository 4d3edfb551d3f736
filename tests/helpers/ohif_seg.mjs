#!/usr/bin/env node
// Loads a DICOM SEG onto its source images the way OHIF 3.13 does, with OHIF's own SEG code
// (@cornerstonejs/adapters 5.6.8, core 5.6.8, dcmjs 0.52 from the cache `make setup` fills),
// and reports what the radiologist would see.
//
//     node ohif_seg.mjs REQUEST.json
//
// REQUEST: {
//   "seg": "seg.dcm",
//   "series": [["a1.dcm", "a2.dcm", ...], ["b1.dcm", ...]],   // the study's image series
//   "orders": [[0, 1], [1, 0]],          // load orders to try (default: [[0, 1, ...]])
//   "expected": "expected.json",         // optional: seg_expected.py's highdicom reading
//   "plane_orientation": [1,0,0,0,1,0]   // optional: an experiment, not a fix: give the
//                                        // SEG this shared ImageOrientationPatient first
// }
// One JSON object on stdout: {"frames", "segments", "loads": [...]} with, per load order,
// the series OHIF attaches the SEG to (the first display set, in load order, holding an
// instance that ReferencedSeriesSequence names: OHIF's DisplaySetService
// getDisplaySetsForReferences, then "defaulting to first series"), how many SEG frames the
// adapter placed (frames it could not place log "Image not present in stack"), and the
// pixels where its labelmaps differ from the SEG frames that reference each image (decoded
// here, independently of the adapter) and from highdicom.
//
// SEGNODE_OHIF_NODE names the cache folder (default ~/.cache/segnode/ohif-node).

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const cacheDir = process.env.SEGNODE_OHIF_NODE || join(homedir(), '.cache/segnode/ohif-node');
const modules = join(cacheDir, 'node_modules');
const load = rel => import(pathToFileURL(join(modules, rel)).href);

const core = await load('@cornerstonejs/core/dist/esm/index.js');
const { adaptersSEG } = await load('@cornerstonejs/adapters/dist/esm/index.js');
const dcmjs = (await load('dcmjs/build/dcmjs.es.js')).default;
const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

/** A Part 10 file as dcmjs's naturalized dataset (what OHIF's DicomMetadataStore holds). */
function readDataset(path) {
  const bytes = readFileSync(path);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const message = DicomMessage.readFile(buffer, { untilTag: '7FE00010', includeUntilTagValue: false });
  return DicomMetaDictionary.naturalizeDataset(message.dict);
}

const num = v => (v === undefined || v === null || v === '' ? undefined : Number(v));
const nums = v => (v === undefined ? undefined : [].concat(v).map(Number));
const first = v => (Array.isArray(v) ? v[0] : v);

/**
 * The image ids and metadata of the study's series, as OHIF builds them from DICOMweb:
 * one `wadors:` id per frame, answering the modules the SEG adapter and core ask for.
 */
class Study {
  constructor(series) {
    this.byImageId = new Map();
    this.series = series.map(files => {
      const imageIds = [];
      const sops = new Set();
      let uid;
      for (const file of files) {
        const ds = readDataset(file);
        uid = ds.SeriesInstanceUID;
        sops.add(ds.SOPInstanceUID);
        const frames = num(ds.NumberOfFrames) || 1;
        for (let f = 1; f <= frames; f++) {
          const id = `wadors:/studies/${ds.StudyInstanceUID}/series/${ds.SeriesInstanceUID}/instances/${ds.SOPInstanceUID}/frames/${f}`;
          this.byImageId.set(id, ds);
          imageIds.push(id);
        }
      }
      return { uid, imageIds, sops };
    });
  }

  /** OHIF's MetadataProvider.get for the modules this path asks for. */
  get(type, imageId) {
    const ds = this.byImageId.get(imageId);
    if (!ds) return undefined;
    switch (type) {
      case 'instance':
        return ds;
      case 'imagePlaneModule':
        return imagePlane(ds);
      case 'generalSeriesModule':
        return {
          modality: ds.Modality,
          seriesInstanceUID: ds.SeriesInstanceUID,
          seriesNumber: num(ds.SeriesNumber),
          studyInstanceUID: ds.StudyInstanceUID,
        };
      case 'generalImageModule':
        return {
          sopInstanceUID: ds.SOPInstanceUID,
          instanceNumber: num(ds.InstanceNumber),
          lossyImageCompression: ds.LossyImageCompression,
        };
      case 'sopCommonModule':
        return { sopClassUID: ds.SOPClassUID, sopInstanceUID: ds.SOPInstanceUID };
      case 'imagePixelModule':
        return {
          samplesPerPixel: num(ds.SamplesPerPixel),
          photometricInterpretation: ds.PhotometricInterpretation,
          rows: num(ds.Rows),
          columns: num(ds.Columns),
          bitsAllocated: num(ds.BitsAllocated),
          bitsStored: num(ds.BitsStored),
          highBit: num(ds.HighBit),
          pixelRepresentation: num(ds.PixelRepresentation),
        };
      default:
        return undefined;
    }
  }
}

/**
 * The image plane module as Cornerstone's metadata modules derive it (and OHIF passes on):
 * an image without ImageOrientationPatient / ImagePositionPatient (ultrasound, secondary
 * capture) gets the default plane (1,0,0 / 0,1,0) at the origin, and pixel spacing 1.
 */
function imagePlane(ds) {
  const iop = nums(ds.ImageOrientationPatient) || [1, 0, 0, 0, 1, 0];
  const spacing = nums(ds.PixelSpacing);
  return {
    frameOfReferenceUID: ds.FrameOfReferenceUID,
    rows: num(ds.Rows),
    columns: num(ds.Columns),
    imageOrientationPatient: iop,
    rowCosines: iop.slice(0, 3),
    columnCosines: iop.slice(3, 6),
    imagePositionPatient: nums(ds.ImagePositionPatient) || [0, 0, 0],
    sliceThickness: num(ds.SliceThickness),
    pixelSpacing: spacing || [1, 1],
    rowPixelSpacing: spacing ? spacing[0] : 1,
    columnPixelSpacing: spacing ? spacing[1] : 1,
    usingDefaultValues: !ds.ImageOrientationPatient || !spacing,
  };
}

/** The SEG's frames decoded from the file by the standard, not by the adapter. */
function segFrames(path) {
  const bytes = readFileSync(path);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const ds = DicomMetaDictionary.naturalizeDataset(DicomMessage.readFile(buffer).dict);
  const rows = num(ds.Rows);
  const columns = num(ds.Columns);
  const pixels = rows * columns;
  const bits = num(ds.BitsAllocated);
  const data = new Uint8Array(first(ds.PixelData));
  const perFrame = [].concat(ds.PerFrameFunctionalGroupsSequence);
  const labelmap = ds.SegmentationType === 'LABELMAP';
  const frames = perFrame.map((item, f) => {
    const derivation = first(item.DerivationImageSequence);
    const source = first(derivation.SourceImageSequence);
    const segment = labelmap ? null : num(first(item.SegmentIdentificationSequence).ReferencedSegmentNumber);
    const values = new Uint16Array(pixels);
    for (let i = 0; i < pixels; i++) {
      if (bits === 1) {
        const bit = f * pixels + i; // one continuous bit stream, LSB first
        values[i] = (data[bit >> 3] >> (bit & 7)) & 1 ? segment : 0;
      } else if (bits === 8) {
        values[i] = data[f * pixels + i];
      } else {
        const at = 2 * (f * pixels + i);
        values[i] = data[at] | (data[at + 1] << 8);
      }
    }
    return { key: sourceKey(source.ReferencedSOPInstanceUID, num(source.ReferencedFrameNumber)), values };
  });
  const segments = [].concat(ds.SegmentSequence).map(s => num(s.SegmentNumber));
  return { ds, frames, segments, rows, columns };
}

const sourceKey = (sop, frame) => (frame ? `${sop}#${frame}` : sop);

/** `wadors:` image id → the key SEG frames reference it by (frame only for multi-frame). */
function imageKey(study, imageId) {
  const ds = study.byImageId.get(imageId);
  const frame = Number(imageId.split('/frames/')[1]);
  return sourceKey(ds.SOPInstanceUID, (num(ds.NumberOfFrames) || 1) > 1 ? frame : undefined);
}

/** Per image key, per segment number, a 0/1 mask of the frame's pixels. */
class Masks {
  constructor(pixels) {
    this.pixels = pixels;
    this.byKey = new Map();
  }

  /** The mask of `segment` on image `key`, created empty. */
  mask(key, segment) {
    if (!this.byKey.has(key)) this.byKey.set(key, new Map());
    const bySegment = this.byKey.get(key);
    if (!bySegment.has(segment)) bySegment.set(segment, new Uint8Array(this.pixels));
    return bySegment.get(segment);
  }

  /** Set every pixel whose value is non-zero, in the mask of the segment it names. */
  addLabels(key, values) {
    values.forEach((v, i) => {
      if (v) this.mask(key, v)[i] = 1;
    });
  }

  /** Set pixels over every mask. */
  count() {
    let n = 0;
    for (const bySegment of this.byKey.values()) for (const m of bySegment.values()) for (const v of m) n += v;
    return n;
  }
}

function masksFromFrames(frames, pixels) {
  const out = new Masks(pixels);
  for (const { key, values } of frames) out.addLabels(key, values);
  return out;
}

/** highdicom's reading (runs of [start, length] per key and segment) as masks. */
function masksFromExpected(path, pixels) {
  const expected = JSON.parse(readFileSync(path, 'utf8'));
  const out = new Masks(pixels);
  for (const [key, segments] of Object.entries(expected.images)) {
    for (const [segment, runs] of Object.entries(segments)) {
      if (!runs.length) continue;
      const mask = out.mask(key, Number(segment));
      for (const [start, length] of runs) mask.fill(1, start, start + length);
    }
  }
  return out;
}

/** Pixels (image, segment, index) set in one and not the other, over the keys of `shown`. */
function difference(shown, reference, keys) {
  const empty = new Uint8Array(shown.pixels);
  let pixels = 0;
  for (const key of keys) {
    const a = shown.byKey.get(key) || new Map();
    const b = reference.byKey.get(key) || new Map();
    for (const segment of new Set([...a.keys(), ...b.keys()])) {
      const x = a.get(segment) || empty;
      const y = b.get(segment) || empty;
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) pixels++;
    }
  }
  return pixels;
}

/** What OHIF's DisplaySetService.getDisplaySetsForReferences returns, in load order. */
function referencedDisplaySets(study, order, referencedSeries) {
  const wanted = new Map();
  for (const ref of [].concat(referencedSeries || [])) {
    const sops = wanted.get(ref.SeriesInstanceUID) || new Set();
    for (const inst of [].concat(ref.ReferencedInstanceSequence || [])) sops.add(inst.ReferencedSOPInstanceUID);
    wanted.set(ref.SeriesInstanceUID, sops);
  }
  return order
    .map(i => ({ index: i, ...study.series[i] }))
    .filter(s => wanted.has(s.uid) && [...s.sops].some(sop => wanted.get(s.uid).has(sop)));
}

/** The SEG file's bytes, with `orientation` as its shared plane orientation if given. */
function segBuffer(segPath, orientation) {
  const bytes = readFileSync(segPath);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  if (!orientation) return buffer;
  const message = DicomMessage.readFile(buffer);
  const ds = DicomMetaDictionary.naturalizeDataset(message.dict);
  const shared = first(ds.SharedFunctionalGroupsSequence) || {};
  shared.PlaneOrientationSequence = [{ ImageOrientationPatient: orientation }];
  ds.SharedFunctionalGroupsSequence = [shared];
  message.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  return message.write();
}

/** Load the SEG onto the display set OHIF would pick for `order`; what it shows. */
async function loadInOrder(study, segPath, seg, order, references, orientation) {
  const candidates = referencedDisplaySets(study, order, seg.ds.ReferencedSeriesSequence);
  const result = { order, referenced_display_sets: candidates.length, attached_series: null };
  if (!candidates.length) return { ...result, error: 'no loaded series is referenced' };
  const chosen = candidates[0];
  result.attached_series = chosen.uid;
  result.attached_index = chosen.index;
  const warnings = [];
  const warn = console.warn;
  console.warn = (...args) => warnings.push(args.map(String).join(' '));
  try {
    core.cache.purgeCache();
    const buffer = segBuffer(segPath, orientation);
    const out = await adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(
      chosen.imageIds,
      buffer,
      { metadataProvider: provider(study) },
    );
    const shown = new Masks(seg.rows * seg.columns);
    for (const layer of out.labelMapImages) {
      layer.forEach((image, i) => shown.addLabels(imageKey(study, chosen.imageIds[i]), image.getPixelData()));
    }
    const keys = [...new Set([...chosen.imageIds.map(id => imageKey(study, id)), ...seg.frames.map(f => f.key)])];
    const unplaced = warnings.filter(w => w.includes("can't import frame")).length;
    Object.assign(result, {
      images: chosen.imageIds.length,
      frames_placed: seg.frames.length - unplaced,
      overlapping: Boolean(out.overlappingSegments),
      set_pixels: shown.count(),
      mismatch_vs_frames: difference(shown, references.frames, keys),
      mismatch_vs_highdicom: references.highdicom ? difference(shown, references.highdicom, keys) : null,
      error: null,
    });
  } catch (e) {
    result.error = String(e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e);
  } finally {
    console.warn = warn;
  }
  result.warnings = [...new Set(warnings)].slice(0, 5);
  return result;
}

const provider = study => ({ get: (type, imageId) => study.get(type, imageId) });

async function main() {
  const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const study = new Study(request.series);
  core.metaData.addProvider((type, imageId) => study.get(type, imageId), 10000);
  const seg = segFrames(request.seg);
  const references = {
    frames: masksFromFrames(seg.frames, seg.rows * seg.columns),
    highdicom: request.expected ? masksFromExpected(request.expected, seg.rows * seg.columns) : null,
  };
  const orders = request.orders || [request.series.map((_, i) => i)];
  const loads = [];
  for (const order of orders) loads.push(await loadInOrder(study, request.seg, seg, order, references, request.plane_orientation));
  const frameSetPixels = references.frames.count();
  process.stdout.write(
    JSON.stringify({
      frames: seg.frames.length,
      segments: seg.segments,
      series_uids: study.series.map(s => s.uid),
      frame_set_pixels: frameSetPixels,
      loads,
    }) + '\n',
  );
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
