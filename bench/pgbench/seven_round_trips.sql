\set i random(1, 20000)
BEGIN;
SELECT id FROM pgb.patients WHERE national_id = lpad(:i::text, 11, '0');
SELECT * FROM pgb.appointments WHERE epj_id = 'epj-' || :i;
UPDATE pgb.appointments SET status = 'completed', version = version + 1, updated_at = now() WHERE epj_id = 'epj-' || :i;
INSERT INTO pgb.appointment_events (appointment_id, patient_id, care_unit_id, occurred_at, event_type, actor_kind, actor_subject, version) SELECT id, patient_id, care_unit_id, now(), 'completed', 'epj', 'load-epj', version FROM pgb.appointments WHERE epj_id = 'epj-' || :i;
INSERT INTO pgb.access_log VALUES (gen_random_uuid(), (SELECT id FROM pgb.patients WHERE national_id = lpad(:i::text, 11, '0')), now(), 'epj', 'load-epj', 'appointments.write', 'x');
COMMIT;
