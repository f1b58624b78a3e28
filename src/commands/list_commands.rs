//! listCommands: the command table, as mongod describes it.

use super::{is_available, Command, Handler, TABLE};
use bson::{doc, Document};

pub const LIST_COMMANDS: Command = Command {
    allowed_before_auth: false,
    ..Command::new(
        "listCommands",
        "get a list of all db commands",
        Handler::Sync(|inv, _| {
            let mut names: Vec<(&str, &Command)> = TABLE
                .iter()
                .filter(|c| !c.help.is_empty() && is_available(&inv.server, c))
                .flat_map(|c| {
                    std::iter::once(c.name)
                        .chain(c.aliases.iter().copied())
                        .map(move |n| (n, *c))
                })
                .collect();
            names.sort_by_key(|(n, _)| *n);
            let mut commands = Document::new();
            for (name, cmd) in names {
                commands.insert(
                    name,
                    doc! {
                        "help": cmd.help,
                        "requiresAuth": !cmd.allowed_before_auth,
                        "secondaryOk": true,
                        "adminOnly": cmd.admin_only,
                        "apiVersions": [],
                        "deprecatedApiVersions": [],
                    },
                );
            }
            Ok(doc! {"commands": commands})
        }),
    )
};
