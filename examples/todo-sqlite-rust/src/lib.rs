//! A JSON todo API over SQLite: `GET /todos` lists, `POST /todos` adds `{"title": ...}`,
//! `POST /todos/<id>/done` marks one done, `DELETE /todos/<id>` removes it.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod kite {
    wit_bindgen::generate!({ path: "../../wit", world: "kite:host/sqlite", generate_all });
}
use kite::fermyon::spin::sqlite::{Connection, Value};

#[derive(Serialize)]
struct Todo {
    id: i64,
    title: String,
    done: bool,
}

#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

struct Todos;
wasip2::http::proxy::export!(Todos);

impl Guest for Todos {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let segments: Vec<&str> = path
            .split('?')
            .next()
            .unwrap_or_default()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let method = request.method();
        let body = read_body(request);
        let (status, json) = match route(&method, &segments, &body) {
            Ok(reply) => reply,
            Err(message) => (500, serde_json::json!({ "error": message }).to_string()),
        };
        respond(response_out, status, &json);
    }
}

fn route(method: &Method, segments: &[&str], body: &[u8]) -> Result<(u16, String), String> {
    let db = Connection::open("default").map_err(|e| format!("{e:?}"))?;
    db.execute(include_str!("../schema.sql"), &[])
        .map_err(|e| format!("{e:?}"))?;
    match (method, segments) {
        (Method::Get, ["todos"]) => {
            let result = db
                .execute("SELECT id, title, done FROM todos ORDER BY id", &[])
                .map_err(|e| format!("{e:?}"))?;
            let todos: Vec<Todo> = result
                .rows
                .iter()
                .map(|row| match &row.values[..] {
                    [Value::Integer(id), Value::Text(title), Value::Integer(done)] => Todo {
                        id: *id,
                        title: title.clone(),
                        done: *done != 0,
                    },
                    _ => Todo {
                        id: 0,
                        title: String::new(),
                        done: false,
                    },
                })
                .collect();
            Ok((
                200,
                serde_json::to_string(&todos).map_err(|e| e.to_string())?,
            ))
        }
        (Method::Post, ["todos"]) => {
            let new: NewTodo = match serde_json::from_slice(body) {
                Ok(new) => new,
                Err(e) => {
                    return Ok((
                        400,
                        serde_json::json!({ "error": e.to_string() }).to_string(),
                    ))
                }
            };
            let result = db
                .execute(
                    "INSERT INTO todos (title) VALUES (?) RETURNING id",
                    &[Value::Text(new.title.clone())],
                )
                .map_err(|e| format!("{e:?}"))?;
            let id = match result.rows.first().map(|r| &r.values[..]) {
                Some([Value::Integer(id)]) => *id,
                _ => return Err("no id returned".into()),
            };
            let todo = Todo {
                id,
                title: new.title,
                done: false,
            };
            Ok((
                201,
                serde_json::to_string(&todo).map_err(|e| e.to_string())?,
            ))
        }
        (Method::Post, ["todos", id, "done"]) | (Method::Delete, ["todos", id]) => {
            let Ok(id) = id.parse::<i64>() else {
                return Ok((404, r#"{"error":"no such todo"}"#.into()));
            };
            let statement = if matches!(method, Method::Delete) {
                "DELETE FROM todos WHERE id = ? RETURNING id"
            } else {
                "UPDATE todos SET done = 1 WHERE id = ? RETURNING id"
            };
            let result = db
                .execute(statement, &[Value::Integer(id)])
                .map_err(|e| format!("{e:?}"))?;
            if result.rows.is_empty() {
                Ok((404, r#"{"error":"no such todo"}"#.into()))
            } else {
                Ok((200, serde_json::json!({ "id": id }).to_string()))
            }
        }
        _ => Ok((404, r#"{"error":"not found"}"#.into())),
    }
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume() {
        if let Ok(mut stream) = body.stream() {
            let _ = stream.read_to_end(&mut bytes);
        }
    }
    bytes
}

fn respond(response_out: ResponseOutparam, status: u16, json: &str) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/json");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(response_out, Ok(response));
    let mut stream = body.write().expect("a body has one stream");
    let _ = stream.write_all(json.as_bytes());
    let _ = stream.flush();
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}
