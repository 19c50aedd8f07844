-- Book-E reads receipts and invoices and waits for the person who sent one to
-- confirm what it read: the reading is an event of the action's lifecycle, a
-- stage before the proposal (`ReceiptAttachmentRead`, `InvoiceRegistrationRead`),
-- so a reading waiting for confirmation survives a restart. Book-E's policy is the
-- one of 0007 with that line added (`bookkeeper_core::roles` is the list; a test
-- appends as each role). Nothing decides on a reading: only a proposal is judged.

DROP POLICY book_e_proposes ON events;

CREATE POLICY book_e_proposes ON events FOR INSERT TO book_e
    WITH CHECK (
        (type IN ('ReceiptAttachmentRead', 'InvoiceRegistrationRead')
            AND actor = 'book-e' AND status = 'READ')
        OR (type IN ('ReceiptAttachmentProposed', 'InvoiceRegistrationProposed')
            AND actor = 'book-e' AND status = 'PROPOSED')
        OR (type = 'SubscriptionEventParked' AND actor = 'book-e' AND status = 'PARKED'));
