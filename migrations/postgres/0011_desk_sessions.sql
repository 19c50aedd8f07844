-- The review desk: Review-E records a person's desk sessions in the log, so only
-- an issued sign-in link signs in, once, on every replica at once, and a sign-out
-- ends the session everywhere. Review-E's policy is the one of 0007 with these two
-- lines added (`bookkeeper_core::roles` is the list; a test appends as each role).

DROP POLICY review_e_decides ON events;

CREATE POLICY review_e_decides ON events FOR INSERT TO review_e
    WITH CHECK (
        (type IN ('ReceiptAttachmentApproved', 'InvoiceRegistrationApproved')
            AND ((actor = 'system:auto' AND status = 'AUTO_APPROVED')
                 OR (bookkeeper_is_person(actor) AND status = 'APPROVED')))
        OR (type IN ('ReceiptAttachmentRejected', 'InvoiceRegistrationRejected')
            AND (actor = 'system:auto' OR bookkeeper_is_person(actor)) AND status = 'REJECTED')
        OR (type IN ('ReceiptAttachmentEscalated', 'InvoiceRegistrationEscalated')
            AND actor IN ('system:auto', 'review-e') AND status = 'ESCALATED')
        OR (type = 'PolicyPublished' AND (actor = 'review-e' OR bookkeeper_is_person(actor)) AND status = 'PUBLISHED')
        OR (type = 'PolicyRetired' AND (actor = 'review-e' OR bookkeeper_is_person(actor)) AND status = 'RETIRED')
        OR (type = 'DeskSignInLinkIssued' AND (actor = 'review-e' OR bookkeeper_is_person(actor)) AND status = 'ISSUED')
        OR (type = 'DeskSessionStarted' AND bookkeeper_is_person(actor) AND status = 'SIGNED_IN')
        OR (type = 'DeskSessionEnded' AND bookkeeper_is_person(actor) AND status = 'SIGNED_OUT')
        OR (type = 'SubscriptionEventParked' AND actor = 'review-e' AND status = 'PARKED'));
