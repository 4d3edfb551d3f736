-- Route every stable study that has images segnode's pipelines take (MR for DCE breast,
-- US for fetal head biometry; see ROUTED) to segnode (declared in orthanc.json as the
-- DICOM modality "segnode"), once per set of such images. "MR" below stands for any of
-- the routed modalities.
--
-- Orthanc 1.10: the Lua SendToModality() takes instance IDs only, so the study is sent
-- through the REST API as an asynchronous job (POST /modalities/segnode/store); the job
-- shows up in /jobs and in Orthanc Explorer's job list.
--
-- Loop prevention. segnode C-STOREs its SEG back into the same study, which makes the
-- study stable once more and calls OnStableStudy again. Routing records, in the study's
-- user metadata "SegnodeRouted" (declared in orthanc.json under "UserMetadata"; Orthanc
-- 1.10 refuses undeclared metadata names), a fingerprint of the MR images it sent: the
-- sorted list "<series id>:<instance count>" of the study's MR series. On every stable
-- event the fingerprint is computed again:
--   * no MR series (e.g. a study holding only SEGs)     -> nothing is sent;
--   * same fingerprint (only non-MR arrived: the SEG)   -> nothing is sent;
--   * different fingerprint (new or more MR images)     -> the MR series are sent again,
--     and segnode makes a new SEG series for the changed inputs.
-- Only the MR series are sent, never segnode's own SEGs, so nothing segnode produced
-- travels back to it. segnode recognises a re-send of identical instances as well (no
-- second SEG), so a manual re-send is harmless too.

local MODALITY = 'segnode'               -- key in "DicomModalities"
local FLAG = 'SegnodeRouted'             -- key in "UserMetadata"
-- Series modalities segnode segments: MR (dce_breast), US (fetal_head_us). Never SEG.
local ROUTED = { MR = true, US = true }

local function mrFingerprint(studyId)
  local series = ParseJson(RestApiGet('/studies/' .. studyId .. '/series'))
  local ids = {}
  local parts = {}
  for _, s in ipairs(series) do
    local modality = s['MainDicomTags']['Modality']
    if ROUTED[modality] then
      table.insert(ids, s['ID'])
      table.insert(parts, s['ID'] .. ':' .. tostring(#s['Instances']))
    end
  end
  table.sort(ids)
  table.sort(parts)
  return ids, table.concat(parts, ',')
end

function OnStableStudy(studyId, tags, metadata)
  local uid = tags['StudyInstanceUID'] or '?'
  local ids, fingerprint = mrFingerprint(studyId)
  if #ids == 0 then
    print('segnode routing: study ' .. studyId .. ' (' .. uid .. ') has no MR or US series, not sent')
    return
  end

  -- Read the current value (?expand answers {} rather than an error when it is not set).
  local current = ParseJson(RestApiGet('/studies/' .. studyId .. '/metadata?expand'))
  local previous = current[FLAG]
  if previous == fingerprint then
    print('segnode routing: study ' .. studyId .. ' (' .. uid ..
          ') already sent with these MR images (only non-MR changed, e.g. the SEG), not sent again')
    return
  end

  local body = DumpJson({ Resources = ids, Asynchronous = true }, true)
  local job = RestApiPost('/modalities/' .. MODALITY .. '/store', body)
  if job == nil then
    print('segnode routing: study ' .. studyId .. ' (' .. uid .. '): POST /modalities/' ..
          MODALITY .. '/store failed, will retry on the next stable event')
    return
  end
  RestApiPut('/studies/' .. studyId .. '/metadata/' .. FLAG, fingerprint)
  print('segnode routing: study ' .. studyId .. ' (' .. uid .. '): ' .. #ids ..
        ' MR series sent to ' .. MODALITY .. ', job ' .. (ParseJson(job)['ID'] or '?'))
end
