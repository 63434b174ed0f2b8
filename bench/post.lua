-- wrk: POST the urlencoded body in $BODY to the target URL, as python-zulip sends logins.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
