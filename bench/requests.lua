-- wrk: send the requests listed in the file $REQUESTS in turn, so that a run touches many
-- users and realms instead of one row. One request a line, three tab-separated fields: the
-- Host header, the Authorization header and the urlencoded body (an empty field is left
-- out; a request with a body is a POST, as python-zulip sends logins). bench/scale writes
-- the file.
local requests = {}
for line in io.lines(os.getenv("REQUESTS")) do
   local host, authorization, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
   local headers = { Host = host }
   local method = "GET"
   if authorization ~= "" then
      headers["Authorization"] = authorization
   end
   if body ~= "" then
      method = "POST"
      headers["Content-Type"] = "application/x-www-form-urlencoded"
   else
      body = nil
   end
   requests[#requests + 1] = wrk.format(method, nil, headers, body)
end

-- Each wrk thread starts at its own place in the list.
local threads = 0
local next_index = 0

function setup(thread)
   thread:set("offset", threads * 7919)
   threads = threads + 1
end

function init(args)
   next_index = offset % #requests
end

function request()
   next_index = next_index % #requests + 1
   return requests[next_index]
end
