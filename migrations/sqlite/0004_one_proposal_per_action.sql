-- One proposal per action (embedded backend). SQLite has one writer at a time, so
-- a trigger is enough: a second proposal for a correlation id is refused. History
-- written before may hold pairs; the lifecycle fold says which one counts. A retry
-- of the same event (same event id) is left to the insert's duplicate handling.
CREATE TRIGGER events_one_proposal BEFORE INSERT ON events
WHEN NEW.type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
 AND EXISTS (SELECT 1 FROM events
             WHERE correlation_id = NEW.correlation_id AND event_id <> NEW.event_id
               AND type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed'))
BEGIN
    SELECT RAISE(ABORT, 'one proposal per action: this correlation id already has a proposal');
END;
