-- The Accounting API claims an execution (`...ExecutionStarted`) in its own commit
-- before it calls Fiken or Folio, so an emergency reject and an execution cannot
-- both happen: whichever commits first at the correlation's version wins.
ALTER POLICY accounting_api_executes ON events
    WITH CHECK (
        (type LIKE '%ExecutionStarted' OR type LIKE '%Executed'
         OR type LIKE '%ExecutionFailed' OR type LIKE '%ExecutionSkipped')
        AND actor IN ('system', 'accounting-api'));
